# jobs/train: the trainer (prefix trn_); included by the top Makefile.am.

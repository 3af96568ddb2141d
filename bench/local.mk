# bench: sources and tests of this folder (included by the top Makefile.am).

# tests: the shared TAP helpers; each folder's local.mk adds its own test programs.
EXTRA_DIST += tests/tap.h tests/tap.sh

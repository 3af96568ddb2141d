# log: leveled logging to stderr (prefix log_). The lowest layer: it includes no other folder,
# so every folder may log through it.
libbitdistill_a_SOURCES += log/log.c log/log.h

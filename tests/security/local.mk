# tests/security: the security review's checks against the real daemon (docs/security.md).
dist_noinst_SCRIPTS += tests/security/test-security.sh
TESTS += tests/security/test-security.sh

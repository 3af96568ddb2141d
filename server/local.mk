# server: the HTTP library — config, libuv loop, HTTP core, TLS, auth, metrics, sd_notify.
libbitdistill_a_SOURCES += server/conf.c server/conf.h \
	server/metrics.c server/metrics.h server/tls.c server/tls.h server/auth.c server/auth.h \
	server/http.c server/http.h server/conn.h server/server.c server/server.h \
	server/notify.c server/notify.h

EXTRA_DIST += tests/http_client.h
check_PROGRAMS += tests/test-srv-http
TESTS += tests/test-srv-http
tests_test_srv_http_LDADD = $(BD_ALL_LIBS)
check_PROGRAMS += tests/test-srv-config
TESTS += tests/test-srv-config
tests_test_srv_config_LDADD = $(BD_ALL_LIBS)
check_PROGRAMS += tests/test-srv-stream
TESTS += tests/test-srv-stream
tests_test_srv_stream_LDADD = $(BD_ALL_LIBS)
dist_noinst_SCRIPTS += tests/test-srv-auth.sh
TESTS += tests/test-srv-auth.sh
dist_noinst_SCRIPTS += tests/test-srv-metrics.sh
TESTS += tests/test-srv-metrics.sh

# deploy: setup scripts and package lists (shipped in the tarball).
dist_noinst_SCRIPTS += deploy/install-deps.sh deploy/quickstart.sh tests/run-all.sh bench/http.sh
EXTRA_DIST += README.md deploy/packages deploy/setup.d .ci/run

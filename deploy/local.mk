# deploy: setup scripts, package lists, the systemd unit, man pages, container and proxy examples.
dist_noinst_SCRIPTS += deploy/install-deps.sh deploy/quickstart.sh tests/run-all.sh bench/http.sh
EXTRA_DIST += README.md deploy/packages deploy/setup.d deploy/npm-ci.sh .ci/run deploy/systemd/bitdistilld.service.in \
	deploy/Dockerfile deploy/nginx/bitdistill.conf

systemdunit_DATA = deploy/systemd/bitdistilld.service
deploy/systemd/bitdistilld.service: $(srcdir)/deploy/systemd/bitdistilld.service.in Makefile
	@$(MKDIR_P) deploy/systemd
	$(AM_V_GEN)sed -e 's|@bindir[@]|$(bindir)|g' -e 's|@systemdunitdir[@]|$(systemdunitdir)|g' \
		$(srcdir)/deploy/systemd/bitdistilld.service.in >$@
CLEANFILES += deploy/systemd/bitdistilld.service

dist_man_MANS = docs/man/bitdistilld.8 docs/man/bitdistill.1
dist_pkgdata_DATA = deploy/bitdistill.example.json

dist_noinst_SCRIPTS += tests/test-deploy-nginx.sh deploy/gen-docs.sh
EXTRA_DIST += deploy/man-templates.txt
TESTS += tests/test-deploy-nginx.sh
dist_noinst_SCRIPTS += tests/test-deploy.sh
TESTS += tests/test-deploy.sh
dist_noinst_SCRIPTS += tests/test-deploy-slurm.sh
TESTS += tests/test-deploy-slurm.sh

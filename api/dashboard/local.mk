# api/dashboard: the web dashboard (vanilla HTML/CSS/ES modules), embedded into the binary as
# byte arrays by embed.sh (od + awk) so bitdistilld serves it with no install path.
DASHBOARD_FILES = api/dashboard/index.html api/dashboard/style.css api/dashboard/app.js \
	api/dashboard/api.js api/dashboard/chart.js api/dashboard/jobs.js api/dashboard/job.js \
	api/dashboard/submit.js api/dashboard/models.js api/dashboard/server.js
libbitdistill_a_SOURCES += api/dashboard.c api/dashboard.h
nodist_libbitdistill_a_SOURCES = api/dashboard-assets.c
api/dashboard-assets.c: $(DASHBOARD_FILES:%=$(srcdir)/%) $(srcdir)/api/dashboard/embed.sh
	@$(MKDIR_P) api
	$(AM_V_GEN)$(SHELL) $(srcdir)/api/dashboard/embed.sh $(srcdir) $(DASHBOARD_FILES) >$@.tmp && \
	mv $@.tmp $@
CLEANFILES += api/dashboard-assets.c
EXTRA_DIST += $(DASHBOARD_FILES) api/dashboard/embed.sh api/dashboard/local.mk api/dashboard/README.md

# Browser test: Playwright (tests/browser, npm) driving Debian's chromium headless.
dist_noinst_SCRIPTS += tests/test-dash-browser.sh
EXTRA_DIST += tests/browser/dash.test.mjs tests/browser/package.json tests/browser/package-lock.json
TESTS += tests/test-dash-browser.sh

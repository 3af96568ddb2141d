# plot: `bitdistill plot` (prefix plot_) — PNG charts: line and bar charts laid out here, drawn
# and written as PNG by cairo on a small canvas (plot/raster.c).
libbitdistill_a_SOURCES += plot/err.c plot/err.h \
	plot/raster.c plot/raster.h plot/axis.c plot/axis.h plot/chart.c plot/chart.h \
	plot/data.c plot/data.h plot/cli.c plot/cli.h

EXTRA_DIST += docs/plot.md tests/plot/package.json tests/plot/package-lock.json \
	tests/plot/png.test.mjs deploy/setup.d/npm-pngjs.sh

# cairo's PNGs against a decoder in the test (zlib inflate), text, ticks, canvas and chart
# geometry, argument parsing
check_PROGRAMS += tests/test-plot
TESTS += tests/test-plot
tests_test_plot_CFLAGS = $(AM_CFLAGS) $(ZLIB_CFLAGS)
tests_test_plot_LDADD = $(BD_ALL_LIBS) $(ZLIB_LIBS)

# `bitdistill plot` end to end: pngcheck, pixels through pngjs (an independent decoder), bad input
dist_noinst_SCRIPTS += tests/test-plot-cli.sh
TESTS += tests/test-plot-cli.sh

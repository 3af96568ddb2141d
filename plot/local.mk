# plot: `bitdistill plot` (prefix plot_) — PNG charts made by the project's own code: a zlib PNG
# encoder, an anti-aliased canvas with a built-in bitmap font, line and bar charts.
libbitdistill_a_SOURCES += plot/err.c plot/err.h plot/png.c plot/png.h plot/font.c plot/font.h \
	plot/raster.c plot/raster.h plot/axis.c plot/axis.h plot/chart.c plot/chart.h \
	plot/data.c plot/data.h plot/cli.c plot/cli.h

EXTRA_DIST += docs/plot.md tests/plot/package.json tests/plot/package-lock.json \
	tests/plot/png.test.mjs deploy/setup.d/npm-pngjs.sh

# PNG encoder against an own decoder, font, ticks, canvas and chart geometry, argument parsing
check_PROGRAMS += tests/test-plot
TESTS += tests/test-plot
tests_test_plot_LDADD = $(BD_ALL_LIBS)

# `bitdistill plot` end to end: pngcheck, pixels through pngjs (an independent decoder), bad input
dist_noinst_SCRIPTS += tests/test-plot-cli.sh
TESTS += tests/test-plot-cli.sh

# tests: the shared TAP helpers; each folder's local.mk adds its own test programs.
EXTRA_DIST += tests/tap.h tests/tap.sh tests/daemon.sh

# The bundled demo model against its model card (models/demo/README.md).
dist_noinst_SCRIPTS += tests/test-demo-model.sh
TESTS += tests/test-demo-model.sh
# CLI, serving and the trainer's evaluation score classification alike on the demo model.
dist_noinst_SCRIPTS += tests/test-cls-agree.sh
TESTS += tests/test-cls-agree.sh
EXTRA_DIST += models/demo/README.md models/demo/student.gguf models/demo/tokenizer.json \
	models/demo/teacher/config.json models/demo/teacher/model.safetensors \
	models/demo/teacher/tokenizer.json models/demo/data/sst2-train-slice.txt \
	models/demo/data/sst2-dev.txt

# Habits: the folder layers (tools/check-layers.sh) and the format (.clang-format,
# tools/check-format.sh; tools/format.sh formats the tree).
dist_noinst_SCRIPTS += tests/test-layers.sh tests/test-format.sh tools/check-layers.sh \
	tools/check-format.sh tools/format.sh
TESTS += tests/test-layers.sh tests/test-format.sh
EXTRA_DIST += .clang-format

# The bundled CNN/DM summarizer against its card (models/summarize/README.md), served over HTTP.
dist_noinst_SCRIPTS += tests/test-cnndm-model.sh
TESTS += tests/test-cnndm-model.sh
EXTRA_DIST += models/summarize/README.md models/summarize/summarizer.gguf \
	tools/summarize/recipe.sh tools/summarize/device.sh tools/summarize/bundle.sh \
	tools/summarize/corpus.sh tools/summarize/config.json tools/summarize/tokenizer_config.json

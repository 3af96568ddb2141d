# tests: the shared TAP helpers; each folder's local.mk adds its own test programs.
EXTRA_DIST += tests/tap.h tests/tap.sh tests/daemon.sh

# The bundled demo model against its model card (models/demo/README.md).
dist_noinst_SCRIPTS += tests/test-demo-model.sh
TESTS += tests/test-demo-model.sh
EXTRA_DIST += models/demo/README.md models/demo/student.gguf models/demo/tokenizer.json \
	models/demo/teacher/config.json models/demo/teacher/model.safetensors \
	models/demo/teacher/tokenizer.json models/demo/data/sst2-train-slice.txt \
	models/demo/data/sst2-dev.txt

# The bundled CNN/DM summarizer against its card (models/summarize/README.md), served over HTTP.
dist_noinst_SCRIPTS += tests/test-cnndm-model.sh
TESTS += tests/test-cnndm-model.sh
EXTRA_DIST += models/summarize/README.md models/summarize/summarizer.gguf \
	tools/summarize/recipe.sh tools/summarize/device.sh tools/summarize/bundle.sh \
	tools/summarize/corpus.sh tools/summarize/config.json tools/summarize/tokenizer_config.json

#!/bin/sh
# deploy/quickstart.sh — the README's first command: install the Debian packages, build, and run
# bitdistilld on 127.0.0.1:8080 in the foreground with the bundled defaults (Ctrl-C drains and
# stops it). Idempotent; works as root or through sudo. State lives in ./bitdistill-data.
# Options are passed on to bitdistilld, e.g. `deploy/quickstart.sh --port 9090`.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
deploy/install-deps.sh base
[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi
mkdir -p build/normal
[ -f build/normal/Makefile ] || (cd build/normal && ../../configure -q)
make -C build/normal -j"$(nproc)" -s bitdistilld bitdistill

port=8080
prev=""
for a in "$@"; do
    [ "$prev" = "--port" ] && port=$a
    case "$a" in --port=*) port=${a#--port=} ;; esac
    prev=$a
done
demo=$top/models/demo
U=http://127.0.0.1:$port
# The bundled SST-2 student and CNN/DM summarizer (models/summarize) serve from the start; the
# bundled FP teacher is under the model root, so jobs can name it ("model": "teacher").
build/normal/bitdistilld --host 127.0.0.1 --port "$port" --data-dir "$top/bitdistill-data" \
    --model "$demo/student.gguf,$top/models/summarize/summarizer.gguf" --model-root "$demo" "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0' INT TERM
for _ in $(seq 100); do curl -sf "$U/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
cat <<EOF2

bitdistilld is serving on $U the bundled SST-2 student (models/demo) and CNN/DM
summarizer (models/summarize), or the models activated last time (a restart keeps them: see
/v1/models). Data in $top/bitdistill-data. Try, from another terminal:
  curl -s $U/v1/classify -d '{"input":["a gorgeous, witty film","dull and lifeless"]}'
  curl -s $U/v1/summarize -d '{"input":"(CNN) The city council approved a plan on Tuesday to build a new bridge over the river. It will cost 40 million dollars, officials said."}'
  curl -s $U/v1/chat/completions -d '{"model":"summarizer","messages":[{"role":"user","content":"Summarize this news article.\\n\\nThe city council approved a new bridge on Tuesday."}]}'
  curl -s $U/v1/models
  curl -s $U/metrics | head
Dashboard: $U/   Stop with Ctrl-C (drains in-flight requests first).
EOF2
# The live demonstration: a short BitDistill job from the bundled teacher on the CPU (about a
# minute on 2 cores), activated into serving only if it beats the active model on the same dev
# sentences ("activate": "if_better"; the job's activation event says why either way).
# BITDISTILL_DEMO_JOB=0 skips it.
if [ "${BITDISTILL_DEMO_JOB:-1}" != 0 ] && curl -sf "$U/readyz" >/dev/null 2>&1; then
    (
        set +e
        field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" | head -1; }
        tf=$(curl -s --data-binary "@$demo/data/sst2-train-slice.txt" \
            "$U/v1/files?purpose=fine-tune&task=sst2&filename=sst2-train-slice.txt" | field id)
        vf=$(curl -s --data-binary "@$demo/data/sst2-dev.txt" \
            "$U/v1/files?purpose=fine-tune&task=sst2&filename=sst2-dev.txt" | field id)
        job=$(curl -s "$U/v1/fine_tuning/jobs" -d "{\"model\":\"teacher\",\"teacher\":\"teacher\",
            \"training_file\":\"$tf\",\"validation_file\":\"$vf\",\"task\":\"sst2\",
            \"method\":{\"type\":\"bitdistill\",\"bitdistill\":{\"distill\":{\"steps\":80}}},
            \"hyperparameters\":{\"batch_size\":16,\"learning_rate\":1e-3,\"max_len\":64},
            \"suffix\":\"demo\",\"activate\":\"if_better\"}" | field id)
        if [ -z "$job" ]; then
            echo "demo job: not submitted (API keys set? see docs/api.md); the daemon keeps serving"
            exit 0
        fi
        echo "demo job $job: distilling the bundled teacher into a new ternary student on the CPU"
        echo "  follow it: curl -sN $U/v1/fine_tuning/jobs/$job/events?stream=true   (or the dashboard)"
        while :; do
            sleep 5
            st=$(curl -s "$U/v1/fine_tuning/jobs/$job") || exit 0
            s=$(echo "$st" | field status)
            case $s in
            succeeded)
                # the if_better decision is the job's activation event
                ev=$(curl -sN "$U/v1/fine_tuning/jobs/$job/events?stream=true" | grep '"type":"activation"')
                why=$(echo "$ev" | sed -n 's/.*"reason":"\([^"]*\)".*/\1/p' | head -1)
                if echo "$ev" | grep -q '"activated":true'; then
                    echo "demo job $job: succeeded; $(echo "$st" | field fine_tuned_model) is now active ($why):"
                else
                    echo "demo job $job: succeeded; its student $(echo "$st" | field fine_tuned_model) was not activated ($why)"
                fi
                curl -s "$U/v1/classify" -d '{"input":["a gorgeous, witty film","dull and lifeless"]}'
                echo; exit 0 ;;
            failed|cancelled) echo "demo job $job: $s: $(echo "$st" | field message)"; exit 0 ;;
            esac
        done
    ) &
fi
wait "$pid"

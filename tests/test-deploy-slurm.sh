#!/bin/sh
# tests/test-deploy-slurm.sh — training jobs through a real cluster scheduler: a single-node
# Slurm from Debian (slurm-wlm + munge) started here, bitdistilld running each trainer with
# `--job-launcher 'srun ...'` (events read through srun's forwarded stdout) and cancelling with
# `--job-cancel 'scancel --name={name}'`: a tiny CPU job succeeds end to end and another is
# cancelled (gone from the Slurm queue, job `cancelled`); a 2-task srun step of `bitdistill
# dist-check` (and of `train`) bootstraps from Slurm's environment. Needs root (slurmd) — CI
# runs as root.
. "$top_srcdir/tests/tap.sh"
B=${top_builddir:-.}
D=${SHARED_DATA:-$top_srcdir/../shared/data}
for p in slurmctld slurmd srun scancel squeue munged; do
    command -v $p >/dev/null 2>&1 || PATH=$PATH:/usr/sbin
    if ! command -v $p >/dev/null 2>&1; then
        skip "$p not installed (apt-get install slurm-wlm munge)"; done_testing; exit $?
    fi
done
if [ "$(id -u)" -ne 0 ]; then skip "slurmd needs root"; done_testing; exit $?; fi
if [ ! -f "$D/sst2/sentence/stsa.binary.train" ]; then skip "needs ../shared/data/sst2 (SST-2, not found at $D; set SHARED_DATA)"; done_testing; exit $?; fi

T=$(mktemp -d /tmp/bd-test-slurm-XXXXXX)
PID=""; MUNGE_STARTED=""
cleanup() {
    kill $PID 2>/dev/null
    [ -f "$T/slurmd.pid" ] && kill "$(cat "$T/slurmd.pid")" 2>/dev/null
    [ -f "$T/slurmctld.pid" ] && kill "$(cat "$T/slurmctld.pid")" 2>/dev/null
    [ -n "$MUNGE_STARTED" ] && pkill -x munged 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
# Ports below Linux's ephemeral range (32768-60999), where the other tests' daemons and clients
# (--port 0, outgoing connections) take theirs; a collision is retried with other ports below.
port() { awk -v r="$(od -An -N2 -tu2 /dev/urandom)" 'BEGIN { print 20000 + r % 12000 }'; }
H=$(hostname -s)
write_conf() {
mkdir -p "$T/state" "$T/spool"
cat >"$T/slurm.conf" <<EOF2
ClusterName=bdtest
SlurmctldHost=$H
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldPort=$(port)
SlurmdPort=$(port)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
NodeName=$H CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
EOF2
}
export SLURM_CONF="$T/slurm.conf"
if ! pgrep -x munged >/dev/null; then
    mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null
    [ -f /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1k count=1 2>/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
    (su -s /bin/sh munge -c "munged --force" 2>/dev/null || munged --force) >/dev/null 2>&1
    MUNGE_STARTED=1
fi
# Start; when a port was taken (a bind failure in a log), stop what started and try new ports.
# Every wait is bounded: sinfo against a controller that never came up would block ~10 s a call.
up=1
for attempt in 1 2 3; do
    write_conf
    slurmctld >/dev/null 2>&1 && slurmd >/dev/null 2>&1
    for _ in $(seq 80); do
        timeout 3 sinfo -h -o %t 2>/dev/null | grep -q idle && up=0 && break
        sleep 0.25
    done
    [ $up -eq 0 ] && break
    grep -q "Address already in use" "$T/slurmctld.log" "$T/slurmd.log" 2>/dev/null || break
    for d in slurmd slurmctld; do [ -f "$T/$d.pid" ] && kill "$(cat "$T/$d.pid")" 2>/dev/null; done
    sleep 1
    rm -f "$T"/*.log "$T"/*.pid
done
if [ $up -ne 0 ]; then
    # The scheduler itself could not start here (no munge socket, no root cgroups...): that is
    # the machine, not bitdistill; say why and skip rather than fail.
    skip "Slurm did not come up on this machine: $(tail -1 "$T/slurmctld.log" 2>/dev/null) $(tail -1 "$T/slurmd.log" 2>/dev/null)"
    done_testing; exit $?
fi
ok $up "single-node Slurm up ($(sinfo -h -o '%P %t %D' 2>/dev/null))"
[ "$(srun -n1 -Q echo hi 2>/dev/null)" = hi ]
ok $? "srun runs a task"

mkdir -p "$T/data/models"
"$B/bitdistill" init --config "$top_srcdir/tests/fixtures/train/tiny-config.json" --out "$T/data/models/tiny" --seed 1 >/dev/null
cp "$top_srcdir/tests/fixtures/train/tok-bytes.json" "$T/data/models/tiny/tokenizer.json"
head -64 "$D/sst2/sentence/stsa.binary.train" >"$T/train.txt"

# Several trainer processes of one srun step find each other from Slurm's environment alone
# (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_STEP_NODELIST, SLURM_JOB_ID: train/dist.c).
DC=$(srun -n2 -c1 -O -Q "$B/bitdistill" dist-check --device cpu 2>"$T/dist.err")
rc=$?
echo "$DC" | sed 's/^/# /'
[ $rc -eq 0 ] && [ "$(echo "$DC" | grep -c 'of 2 (slurm) .* sum ok$')" -eq 2 ] &&
    [ "$(echo "$DC" | sed -n 's/.* id \([0-9a-f]*\) .*/\1/p' | sort -u | wc -l)" -eq 1 ]
ok $? "srun -n2 bitdistill dist-check: ranks 0 and 1 connect through Slurm's variables, same id, sum ok"
# `bitdistill train` as 2 tasks: rank 0 alone writes events to the shared stdout; here on CPUs,
# so the job must fail, on both ranks, with one error event naming the rank without a GPU
cat >"$T/dist-job.json" <<EOF2
{"method":"bitnet_sft","model":"$T/data/models/tiny","task":"sst2","train_file":"$T/train.txt",
 "max_len":48,"batch":8,"distill":{"steps":2}}
EOF2
EV=$(srun -n2 -c1 -O -Q "$B/bitdistill" train --config "$T/dist-job.json" --out "$T/dist-out" \
    --device cpu --events-fd 1 --quiet 2>"$T/dist-train.err")
rc=$?
[ $rc -ne 0 ] && [ "$(echo "$EV" | grep -c '"type":"error"')" -eq 1 ] &&
    echo "$EV" | grep -q 'has no GPU to train on' && [ "$(grep -c 'no GPU' "$T/dist-train.err")" -eq 2 ]
ok $? "srun -n2 bitdistill train --device cpu: one error event (rank 0's), both ranks fail on stderr"
"$B/bitdistilld" --port 0 --port-file "$T/port" --data-dir "$T/data" --job-threads 1 \
    --job-launcher "srun --job-name={name} -n1 -c1 -u -Q" --job-cancel "scancel --name={name}" >"$T/d.log" 2>&1 &
PID=$!
for _ in $(seq 200); do [ -s "$T/port" ] && break; sleep 0.05; done
U="http://127.0.0.1:$(cat "$T/port")"
TF=$(curl -s --data-binary "@$T/train.txt" "$U/v1/files?purpose=fine-tune&task=sst2" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
status_of() { curl -s "$U/v1/fine_tuning/jobs/$1" | sed -n 's/.*"status":"\([a-z_]*\)".*/\1/p' | head -1; }
wait_for() { for _ in $(seq $(($3 * 10))); do s=$(status_of "$1"); [ "$s" = "$2" ] && break; case $s in succeeded|failed|cancelled) break ;; esac; sleep 0.1; done; status_of "$1"; }

J=$(curl -s "$U/v1/fine_tuning/jobs" -d "{\"model\":\"tiny\",\"training_file\":\"$TF\",\"method\":{\"type\":\"bitnet_sft\",\"bitnet_sft\":{\"distill\":{\"steps\":4}}},\"hyperparameters\":{\"batch_size\":8}}" | sed -n 's/.*"id":"\(ftjob-[^"]*\)".*/\1/p' | head -1)
is "$(wait_for "$J" succeeded 120)" succeeded "a tiny job run through srun succeeds"
scontrol -o show job 2>/dev/null | grep "JobName=bd-$J " | grep -q "JobState=COMPLETED"
ok $? "Slurm ran it as job bd-$J (COMPLETED in scontrol)"
[ "$(curl -s "$U/v1/fine_tuning/jobs/$J/events?limit=1000" | grep -o '"type":"step"' | wc -l)" -ge 4 ]
ok $? "its step events came back through srun's stdout"

L=$(curl -s "$U/v1/fine_tuning/jobs" -d "{\"model\":\"tiny\",\"training_file\":\"$TF\",\"method\":{\"type\":\"bitnet_sft\",\"bitnet_sft\":{\"distill\":{\"steps\":100000}}},\"hyperparameters\":{\"batch_size\":8}}" | sed -n 's/.*"id":"\(ftjob-[^"]*\)".*/\1/p' | head -1)
for _ in $(seq 300); do squeue -h -n "bd-$L" -o %T 2>/dev/null | grep -q RUNNING && break; sleep 0.1; done
squeue -h -n "bd-$L" -o %T | grep -q RUNNING
ok $? "a long job is RUNNING in the Slurm queue"
curl -s -X POST "$U/v1/fine_tuning/jobs/$L/cancel" >/dev/null
is "$(wait_for "$L" cancelled 60)" cancelled "cancel maps to scancel: the job ends cancelled"
gone=1
for _ in $(seq 100); do [ -z "$(squeue -h -n "bd-$L" 2>/dev/null)" ] && gone=0 && break; sleep 0.1; done
ok $gone "and it left the Slurm queue"
kill $PID; wait $PID; ok $? "daemon exits 0"; PID=""
done_testing

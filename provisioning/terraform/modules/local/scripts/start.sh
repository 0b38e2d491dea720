#!/bin/sh
# Starts one `runner agent` in the background for the local module.
#
# The runner gets its own session (setsid), so it outlives terraform and is
# not killed with terraform's process group; stdin, stdout and stderr are
# redirected, so terraform does not wait for it. The bootstrap token and the
# SASL password arrive in the environment and stay there: never on a
# command line, where process listings would show them.
set -eu
set -f

alive() {
	# A zombie (dead, not yet reaped) is not alive.
	[ -r "/proc/$1/stat" ] || return 1
	state=$(sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)
	[ "$state" != Z ]
}

mkdir -p "$RUNNER_DIR/data"
chmod 700 "$RUNNER_DIR" "$RUNNER_DIR/data"

if [ -f "$PID_FILE" ] && alive "$(cat "$PID_FILE")"; then
	echo "$RUNNER_NAME: already running as pid $(cat "$PID_FILE")"
	exit 0
fi

set -- agent --control-plane "$CONTROL_PLANE_URL" --data-dir "$RUNNER_DIR/data" \
	--name "$RUNNER_NAME" --listen "$OPS_LISTEN" --brokers "$KAFKA_BROKERS"
[ -n "$KAFKA_TLS" ] && set -- "$@" --tls
[ -n "$KAFKA_SASL_MECHANISM" ] && set -- "$@" --sasl-mechanism "$KAFKA_SASL_MECHANISM" --sasl-user "$KAFKA_SASL_USER"
if [ -n "$EXTRA_ARGS" ]; then
	old_ifs=$IFS
	IFS=$(printf '\037')
	# shellcheck disable=SC2086 # split on the unit separator only
	set -- "$@" $EXTRA_ARGS
	IFS=$old_ifs
fi
[ -z "$SLUICE_SASL_PASSWORD" ] && unset SLUICE_SASL_PASSWORD
[ -z "$SLUICE_BOOTSTRAP_TOKEN" ] && unset SLUICE_BOOTSTRAP_TOKEN

echo "--- $(date -u +%Y-%m-%dT%H:%M:%SZ) starting $RUNNER_NAME" >>"$LOG_FILE"
offset=$(($(wc -c <"$LOG_FILE") + 1))
setsid "$RUNNER_BINARY" "$@" </dev/null >>"$LOG_FILE" 2>&1 &
pid=$!
echo "$pid" >"$PID_FILE"

# A runner that cannot start (a bad flag, a missing binary) exits at once:
# fail the apply with its log instead of reporting a runner that is gone.
i=0
while [ $i -lt 10 ]; do
	sleep 0.2
	if ! alive "$pid"; then
		rm -f "$PID_FILE"
		echo "$RUNNER_NAME: the runner exited at start; its output ($LOG_FILE):" >&2
		tail -c "+$offset" "$LOG_FILE" | head -n 15 >&2
		exit 1
	fi
	i=$((i + 1))
done
echo "$RUNNER_NAME: started as pid $pid (log: $LOG_FILE)"

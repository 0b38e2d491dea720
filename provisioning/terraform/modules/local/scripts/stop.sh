#!/bin/sh
# Stops one runner of the local module: SIGTERM, up to 30 s to drain, then
# SIGKILL. Removes its data directory (the credential and the cache), so a
# runner created again under this name registers afresh; the log stays.
set -eu

alive() {
	[ -r "/proc/$1/stat" ] || return 1
	state=$(sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)
	[ "$state" != Z ]
}

if [ -f "$PID_FILE" ]; then
	pid=$(cat "$PID_FILE")
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		i=0
		while alive "$pid"; do
			i=$((i + 1))
			if [ $i -ge 300 ]; then
				echo "runner pid $pid did not stop in 30s: killing it" >&2
				kill -KILL "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.1
		done
		echo "stopped runner pid $pid"
	else
		echo "runner pid $pid was not running"
	fi
	rm -f "$PID_FILE"
fi
rm -rf "$RUNNER_DIR/data"

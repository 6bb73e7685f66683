#!/bin/sh
# kickagent package: after install or upgrade. The unit is made known to
# systemd but neither enabled nor started: the operator goes live
# (README "Going live"). An upgrade restarts an agent that was running, so
# the new binary runs.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	if systemctl is-active --quiet kickagent.service; then
		systemctl try-restart kickagent.service || true
	fi
fi
exit 0

#!/bin/sh
# kickagent package: after removal. dpkg passes "remove", "purge" or
# "upgrade"; rpm the number of versions left (0: erased).
# Purge removes the configuration, job files and state; the audit log
# (/var/log/kickagent) stays: it explains past kicks (README "Install").
set -e
case "$1" in
purge)
	rm -rf /etc/kickagent /var/lib/kickagent
	;;
esac
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0

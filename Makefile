# make            build ./kickagent
# make test       the project's tests (test/run.sh; root; installs Dovecot 2.3/2.4)
# make install    binary, systemd unit, example config and rules
# make bench      bench/run.sh (benchmarks against doveadm; BENCHMARKS.md)
# make profile    bench/profile.sh (CPU profiles of the hot paths; BENCHMARKS.md)
# make compare BEFORE=<commit> [AFTER=<commit>]   bench/compare.sh (before/after; BENCHMARKS.md)
# make soak       bench/soak.sh (1-hour soak of a running agent, VER=2.4 or 2.3; RELIABILITY.md)
PREFIX ?= /usr/local
GO ?= go

.PHONY: build test install bench profile compare soak
build:
	$(GO) build -o kickagent ./cmd/kickagent

test:
	test/run.sh

bench:
	bench/run.sh

profile:
	bench/profile.sh

compare:
	bench/compare.sh

soak:
	bench/soak.sh

install: build
	install -D -m 0755 kickagent $(DESTDIR)$(PREFIX)/bin/kickagent
	install -D -m 0644 systemd/kickagent.service $(DESTDIR)/etc/systemd/system/kickagent.service
	install -d -m 0750 $(DESTDIR)/etc/kickagent/rules.d $(DESTDIR)/var/log/kickagent
	test -e $(DESTDIR)/etc/kickagent/kickagent.yaml || install -m 0640 systemd/kickagent.yaml $(DESTDIR)/etc/kickagent/kickagent.yaml
	test -e $(DESTDIR)/etc/kickagent/rules.yaml || install -m 0640 rules.example.yaml $(DESTDIR)/etc/kickagent/rules.yaml
	@echo "installed; review /etc/kickagent/rules.yaml, then: systemctl daemon-reload && systemctl enable --now kickagent"

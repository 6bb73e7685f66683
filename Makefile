# make            build ./kickagent
# make test       the project's tests (test/run.sh; root; installs Dovecot 2.3/2.4)
# make install    the package's files at the package's paths (packaging/nfpm.yaml): /usr/bin,
#                 the unit, /etc/kickagent (safe defaults, never overwritten), logrotate,
#                 man pages (with go-md2man), completion, docs
# make package    .deb and .rpm into packaging/dist (packaging/build.sh; nfpm, go-md2man)
# make package-test  test/package.sh (build, install, upgrade and purge in a throwaway chroot)
# make bench      bench/run.sh (benchmarks against doveadm; BENCHMARKS.md)
# make profile    bench/profile.sh (CPU profiles of the hot paths; BENCHMARKS.md)
# make compare BEFORE=<commit> [AFTER=<commit>]   bench/compare.sh (before/after; BENCHMARKS.md)
# make soak       bench/soak.sh (1-hour soak of a running agent, VER=2.4 or 2.3; RELIABILITY.md)
# The package's paths; BINDIR also goes into the installed unit's ExecStart.
BINDIR ?= /usr/bin
UNITDIR ?= /usr/lib/systemd/system
DOCDIR ?= /usr/share/doc/kickagent
MANDIR ?= /usr/share/man
GO ?= go

.PHONY: build test install bench profile compare soak package package-test
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
	install -D -m 0755 kickagent $(DESTDIR)$(BINDIR)/kickagent
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed 's#/usr/bin/kickagent#$(BINDIR)/kickagent#g' systemd/kickagent.service > $(DESTDIR)$(UNITDIR)/kickagent.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/kickagent.service
	install -d -m 0750 $(DESTDIR)/etc/kickagent $(DESTDIR)/etc/kickagent/rules.d $(DESTDIR)/var/log/kickagent
	install -d -m 0700 $(DESTDIR)/var/lib/kickagent
	# Like the package's conffiles: an existing file is the operator's and stays.
	test -e $(DESTDIR)/etc/kickagent/kickagent.yaml || install -m 0640 systemd/kickagent.yaml $(DESTDIR)/etc/kickagent/kickagent.yaml
	test -e $(DESTDIR)/etc/kickagent/rules.yaml || install -m 0640 systemd/rules.yaml $(DESTDIR)/etc/kickagent/rules.yaml
	test -e $(DESTDIR)/etc/logrotate.d/kickagent || install -D -m 0644 contrib/logrotate/kickagent $(DESTDIR)/etc/logrotate.d/kickagent
	install -D -m 0644 contrib/completion/kickagent.bash $(DESTDIR)/usr/share/bash-completion/completions/kickagent
	install -D -m 0644 contrib/completion/_kickagent $(DESTDIR)/usr/share/zsh/vendor-completions/_kickagent
	install -D -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -D -m 0644 CONFIGURATION.md $(DESTDIR)$(DOCDIR)/CONFIGURATION.md
	install -D -m 0644 rules.example.yaml $(DESTDIR)$(DOCDIR)/examples/rules.example.yaml
	install -D -m 0644 contrib/fail2ban/README.md $(DESTDIR)$(DOCDIR)/examples/fail2ban/README.md
	install -D -m 0644 contrib/fail2ban/action.d/kickagent.conf $(DESTDIR)$(DOCDIR)/examples/fail2ban/action.d/kickagent.conf
	install -D -m 0644 contrib/grafana/kickagent.json $(DESTDIR)$(DOCDIR)/examples/grafana/kickagent.json
	install -D -m 0644 contrib/prometheus/kickagent.rules.yml $(DESTDIR)$(DOCDIR)/examples/prometheus/kickagent.rules.yml
	if command -v go-md2man >/dev/null; then \
		mandir=$$(mktemp -d) && packaging/man.sh ./kickagent $$mandir && \
		install -D -m 0644 $$mandir/kickagent.8 $(DESTDIR)$(MANDIR)/man8/kickagent.8 && \
		install -D -m 0644 $$mandir/kickagent-rules.5 $(DESTDIR)$(MANDIR)/man5/kickagent-rules.5 && rm -rf $$mandir; \
	else echo "go-md2man missing (apt-get install go-md2man): man pages not installed"; fi
	@echo "installed with safe defaults (dry_run: true, no rules): README \"Going live\""

package:
	packaging/build.sh

package-test:
	test/package.sh

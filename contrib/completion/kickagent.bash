# bash completion for kickagent. Installed as
# /usr/share/bash-completion/completions/kickagent.
# The flag lists are those of "kickagent COMMAND --help"; a test
# (cmd/kickagent/completion_test.go) keeps them in step.

_kickagent() {
	local cur prev cmd flags
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "who kick run block unblock blocks reset drain check plan snapshot test-policy bundle version help" -- "$cur"))
		return 0
	fi
	cmd=${COMP_WORDS[1]}
	# Values that are files or directories.
	case $prev in
	-c | --rules | --snapshot | --audit-log | --signing-key | -o)
		COMPREPLY=($(compgen -f -- "$cur"))
		return 0
		;;
	-a | --rules-dir | --policy | --state-dir | --src)
		COMPREPLY=($(compgen -f -- "$cur"))
		return 0
		;;
	--log-level)
		COMPREPLY=($(compgen -W "debug info warn error" -- "$cur"))
		return 0
		;;
	esac
	case $cmd in
	who) flags="-a -1 -f --json --timeout" ;;
	kick) flags="-a -f -h --dry-run --json --force --ipc --timeout" ;;
	run) flags="-c -a --rules --rules-dir --policy --interval --idle-interval --metrics --audit-log --state-dir --auth-policy --dry-run --once --max-kicks-per-cycle --breaker-fraction --log-level --log-json" ;;
	block) flags="--for --reason --force -c --rules-dir" ;;
	unblock | blocks) flags="-c --rules-dir" ;;
	reset) flags="--at -f --expire --auth-master --no-cache-flush --timeout --dry-run -c --rules-dir" ;;
	drain) flags="--dest --all --rate --status --cancel -a -c --rules-dir" ;;
	check) flags="-c --rules --policy" ;;
	plan) flags="-c --rules --policy --snapshot -a --json --now --policy-timeout --policy-memory-mib --timeout" ;;
	snapshot) flags="-a --timeout" ;;
	bundle) flags="--src --revision --signing-key --key-id --scope -o" ;;
	test-policy)
		flags="-q -v --run --policy-timeout --policy-memory-mib"
		[[ $cur == -* ]] || { COMPREPLY=($(compgen -d -- "$cur")); return 0; }
		;;
	help)
		COMPREPLY=($(compgen -W "who kick run block unblock blocks reset drain check plan snapshot test-policy bundle version" -- "$cur"))
		return 0
		;;
	*) return 0 ;;
	esac
	COMPREPLY=($(compgen -W "$flags --help" -- "$cur"))
}
complete -F _kickagent kickagent

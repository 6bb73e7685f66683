// Package kick disconnects the anvil sessions a caller selected, on Dovecot
// 2.3 and 2.4, without touching connections the selection does not name.
//
// Plan groups the selected sessions into the units Dovecot can actually
// kick (a whole process on 2.3; a user within a process on 2.4) and flags
// every unit whose kick would also close connections that were not
// selected (collateral). Run executes a plan: KICK-USER on 2.4, SIGTERM to a
// verified Dovecot process on 2.3, then confirms with a fresh dump, because
// anvil's own counts are unreliable. Package kick never chooses sessions;
// that is the caller's filter or rule engine.
package kick

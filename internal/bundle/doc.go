// Package bundle carries kickagent's YAML rules and Rego policies in signed
// OPA bundles: it builds and signs them (Build, Write), downloads them from
// a bundle service with OPA's downloader (Source), persists the last good one
// under the state directory, and hands each verified bundle to the agent's
// validate-then-swap reload.
//
// # Layout
//
// A source directory for Build holds
//
//	rules/NAME.yaml   YAML rules files, exactly as a local rules file or a
//	                  rules.d drop-in (allow:, rules: [...]); .yml too
//	policy/NAME.rego  Rego modules, package kickagent, as a local policy dir
//
// and nothing else: any other file is an error, so a file its author meant
// to ship is never left out silently. Hidden files (editors' temporaries)
// are skipped.
//
// In the bundle, each Rego module keeps its path (/policy/NAME.rego) and
// each rules file travels as a string in the bundle's data:
//
//	data.kickagent.rules["NAME.yaml"] = "<the file's bytes>"
//
// Why a string and not a data.yaml document: OPA's bundle writer merges all
// data into one /data.json, and a signature over a data file covers its
// parsed value, not its bytes. A rules document parsed by OPA (YAML 1.1)
// and re-read by the engine (yaml.v3) could differ under one signature, and
// its comments and line numbers would be gone. As a string, the exact bytes
// are signed and the engine reads the very file the author wrote, with the
// same line numbers in its errors. The manifest's root is "kickagent" and
// its revision names the bundle (the kickagent_bundle_info metric, logs).
//
// Extract returns, from a verified bundle, the rules files in name order
// (each with a pseudo file name such as "bundle:r2/rules/10-block.yaml" for
// error messages) and the Rego modules by pseudo file name, for the engine.
//
// # Source
//
// Source polls the bundle's URL with OPA's downloader (ETag, If-None-Match,
// optional long polling), which verifies each bundle's signature as it
// reads it. A verified bundle is staged under STATE_DIR/bundle/ (fsynced)
// before OnBundle sees it, and becomes the persisted copy only if OnBundle
// accepts it; LoadPersisted verifies that copy again at start. A refused
// bundle is kept in memory for Retry. Nothing here is fatal after New: the
// bundle in force stays until a better one is accepted.
package bundle

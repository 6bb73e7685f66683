# A policy must be in package kickagent.
package policy.kick

kick contains "x"

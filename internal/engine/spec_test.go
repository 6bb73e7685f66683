package engine

import (
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestRuleSpecRoundTrip: a RuleSpec marshalled with its tags (as the job
// commands write it) parses back to the same values, every key included,
// so that the writer and the reader cannot drift apart.
func TestRuleSpecRoundTrip(t *testing.T) {
	in := RuleSpec{Name: "n", Description: "d", Users: []string{"u*"}, Networks: []string{"192.0.2.0/24"},
		Services: []string{"imap"}, DestHosts: []string{"10.0.0.2"}, PassdbField: "user_alt", Values: []string{"v"},
		ExceptUsers: []string{"x"}, ExceptNetworks: []string{"192.0.2.1"}, DryRun: true, Expires: "2030-01-01T00:00:00Z",
		MaxKicks: 3, LoggedInBefore: "2029-01-01T00:00:00Z", Rate: "5/s", Drain: true}
	// Every key is set: a new field left out here fails the test.
	v := reflect.ValueOf(in)
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).IsExported() && v.Field(i).IsZero() {
			t.Fatalf("set %s in this test", v.Type().Field(i).Name)
		}
	}
	data, err := yaml.Marshal(RulesFile{Rules: []RuleSpec{in}})
	if err != nil {
		t.Fatal(err)
	}
	fs, errs := parseRulesFile("x.yaml", data)
	if len(errs) > 0 || len(fs.Rules) != 1 {
		t.Fatalf("parse:\n%s\n%v", data, errs)
	}
	got := *fs.Rules[0]
	got.line, got.lines, got.itemLines = 0, nil, nil
	if !reflect.DeepEqual(got, in) {
		t.Errorf("round trip:\n%+v\nwant\n%+v\n%s", got, in, data)
	}
	if len(ruleKeys) != len(ruleField) || ruleKeys[0] != "name" || ruleKeys[len(ruleKeys)-1] != "drain" {
		t.Errorf("keys %v", ruleKeys)
	}
}

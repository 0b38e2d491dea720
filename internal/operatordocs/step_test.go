package operatordocs

import "testing"

// Example steps are written as the value after `name:`; the page shows them
// as a steps-list item, keeping the author's layout.
func TestStepYAML(t *testing.T) {
	cases := []struct{ step, want string }{
		{"speed > 100", "- op: speed > 100\n"},
		{"format: json", "- op:\n    format: json\n"},
		{"{format: json}", "- op: {format: json}\n"},
		{"- a\n- b\n", "- op:\n    - a\n    - b\n"},
		{"tumbling: 5m\naggregate:\n  n: count()\n", "- op:\n    tumbling: 5m\n    aggregate:\n      n: count()\n"},
		{"|\n  return 1\n\n  // done\n", "- op: |\n      return 1\n\n      // done\n"},
		{"{a: 1,\n b: 2}", "- op: {a: 1,\n     b: 2}\n"},
		{"# a comment\nx > 1", "- op: # a comment\n    x > 1\n"},
		{"'quoted: yes'", "- op: 'quoted: yes'\n"},
	}
	for _, tc := range cases {
		got, err := stepYAML("op", tc.step)
		if err != nil {
			t.Errorf("stepYAML(%q): %v", tc.step, err)
			continue
		}
		if got != tc.want {
			t.Errorf("stepYAML(%q) =\n%s\nwant\n%s", tc.step, got, tc.want)
		}
	}
	for _, bad := range []string{"", "a: [1, 2", "  \n"} {
		if _, err := stepYAML("op", bad); err == nil {
			t.Errorf("stepYAML(%q) succeeded, want an error", bad)
		}
	}
}

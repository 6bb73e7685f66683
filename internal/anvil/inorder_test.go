package anvil

import "testing"

func TestInOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		calls []int
		void  bool
		n     int
		whole bool
	}{
		{"none, empty dump", nil, false, 0, true},
		{"none", nil, false, 3, false},
		{"whole", []int{0, 1, 2}, false, 3, true},
		{"short", []int{0, 1}, false, 3, false},
		{"longer", []int{0, 1, 2, 3}, false, 3, false},
		{"gap", []int{0, 2, 3}, false, 3, false},
		{"not from 0", []int{1, 2, 3}, false, 3, false},
		{"retried", []int{0, 1, 0, 1, 2}, false, 3, true},
		{"gap, then retried", []int{0, 2, 0, 1, 2}, false, 3, true},
		{"voided", []int{0, 1, 2}, true, 3, false},
	} {
		var o InOrder
		for _, i := range tc.calls {
			o.Next(i)
		}
		if tc.void {
			o.Void()
		}
		if got := o.Whole(tc.n); got != tc.whole {
			t.Errorf("%s: Whole(%d) = %v, want %v", tc.name, tc.n, got, tc.whole)
		}
	}
}

package worker

import (
	"errors"
	"strings"
	"testing"
)

// TestJudgeSentinels: a healthy set is all ok; each reason a failover could
// not happen is a warning naming it; only no answer at all is a failure.
func TestJudgeSentinels(t *testing.T) {
	healthy := func(addr string) sentinelView {
		return sentinelView{addr: addr, master: "10.0.0.1:6379", quorum: 2, replicas: []string{"10.0.0.2:6379"}, sentinels: []string{"a", "b"}}
	}
	for _, tc := range []struct {
		name     string
		views    []sentinelView
		want     []string // substrings of the lines, "status what: detail"
		wantNot  string
		wantFail bool
	}{
		{name: "healthy", views: []sentinelView{healthy("s1"), healthy("s2"), healthy("s3")},
			want:    []string{`ok sentinel s1: master "m" at 10.0.0.1:6379; 1 replica(s) up (10.0.0.2:6379); knows 2 other Sentinel(s) (a, b); quorum 2`},
			wantNot: "warn"},
		{name: "no replica", views: []sentinelView{func() sentinelView { v := healthy("s1"); v.replicas, v.down = nil, []string{"10.0.0.2:6379"}; return v }()},
			want: []string{"replica(s) down (10.0.0.2:6379)", "warn sentinel: sentinel s1 knows no replica that is up: a failover could not happen"}},
		{name: "two sentinels", views: []sentinelView{func() sentinelView { v := healthy("s1"); v.sentinels = []string{"b"}; return v }()},
			want: []string{"warn sentinel: sentinel s1 knows 2 Sentinel(s) in all, itself included: with fewer than 3"}},
		{name: "no quorum", views: []sentinelView{func() sentinelView {
			v := healthy("s1")
			v.ckquorum = errors.New("NOQUORUM 1 usable Sentinels")
			return v
		}()},
			want: []string{"warn sentinel s1: ", "quorum not reachable: NOQUORUM 1 usable Sentinels"}},
		{name: "one silent", views: []sentinelView{healthy("s1"), {addr: "s2", err: errors.New("connection refused")}},
			want: []string{"ok sentinel s1", `warn sentinel s2: did not answer about master "m": connection refused`}, wantNot: "fail"},
		{name: "disagree", views: []sentinelView{healthy("s1"), func() sentinelView { v := healthy("s2"); v.master = "10.0.0.2:6379"; return v }()},
			want: []string{"warn sentinel: the Sentinels disagree on the master: 10.0.0.1:6379 (by s1); 10.0.0.2:6379 (by s2)"}},
		{name: "none answers", views: []sentinelView{{addr: "s1", err: errors.New("refused")}},
			want: []string{`fail sentinel: no Sentinel of REDIS_SENTINEL_ADDRS answered about master "m"`}, wantFail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sb strings.Builder
			failed := false
			for _, l := range judgeSentinels("m", tc.views) {
				sb.WriteString(l.Status + " " + l.What + ": " + l.Detail + "\n")
				failed = failed || l.Status == CheckFail
			}
			out := sb.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("lacks %q:\n%s", w, out)
				}
			}
			if tc.wantNot != "" && strings.Contains(out, tc.wantNot) {
				t.Errorf("has %q:\n%s", tc.wantNot, out)
			}
			if failed != tc.wantFail {
				t.Errorf("failed = %v, want %v:\n%s", failed, tc.wantFail, out)
			}
		})
	}
}

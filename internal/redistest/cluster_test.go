package redistest

import (
	"strconv"
	"testing"
)

// TestNewCluster: the Cluster serves keys, spreads them over its masters
// and reports every master.
func TestNewCluster(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	if len(c.Addrs) != ClusterMasters {
		t.Fatalf("%d addresses, want %d", len(c.Addrs), ClusterMasters)
	}
	rc := c.Client(t)
	ctx := t.Context()
	masters := map[string]bool{}
	for i := range 30 {
		k := "k" + strconv.Itoa(i)
		if err := rc.Set(ctx, k, "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		masters[c.MasterOf(t, rc, k)] = true
	}
	if len(masters) != ClusterMasters {
		t.Errorf("30 keys on %d masters, want %d", len(masters), ClusterMasters)
	}
}

package dlq

import (
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/taskstore"
)

// TestMigrate: entries an older version wrote under PrefixLegacy move to
// the hash-tagged keys; where both hold an ID, the later failure stays;
// the Seq counter carries over; no legacy key is left.
func TestMigrate(t *testing.T) {
	t.Parallel()
	s, rdb := newStore(t)
	ctx := t.Context()
	legacy := &Store{rdb: rdb, tasks: taskstore.New(rdb), prefix: PrefixLegacy, nowFunc: time.Now}
	for i := range 5 { // push the legacy Seq past the current one
		if _, err := legacy.Put(ctx, entry("meari:1:1:seq", "meari", t0.Add(time.Duration(i)))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := legacy.Purge(ctx, "test", "meari:1:1:seq"); err != nil {
		t.Fatal(err)
	}
	// The versions of the legacy layout left no trail.
	if err := rdb.Del(ctx, legacy.trailKey("meari:1:1:seq")).Err(); err != nil {
		t.Fatal(err)
	}
	only, err := legacy.Put(ctx, entry("pandapon:1", "pandapon", t0))
	if err != nil {
		t.Fatal(err)
	}
	newerLegacy, err := legacy.Put(ctx, entry("pandapon:2", "pandapon", t0.Add(2*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, entry("pandapon:2", "pandapon", t0.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := legacy.Put(ctx, entry("meari:1:1:3", "meari", t0)); err != nil {
		t.Fatal(err)
	}
	newerCurrent, err := s.Put(ctx, entry("meari:1:1:3", "meari", t0.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	// The reconciler filed an entry for a task whose legacy entry it did
	// not see: the legacy one, with the real reason, wins though older.
	overReconciled, err := legacy.Put(ctx, entry("pandapon:4", "pandapon", t0))
	if err != nil {
		t.Fatal(err)
	}
	filed := entry("pandapon:4", "pandapon", t0.Add(time.Hour))
	filed.Reason = ReasonArchived
	if _, err := s.Put(ctx, filed); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.HLen(ctx, legacy.entriesKey()).Result(); err != nil || n != 4 {
		t.Fatalf("legacy entries = %d, %v; want 4", n, err)
	}

	moved, dropped, err := s.Migrate(ctx)
	if err != nil || moved != 3 || dropped != 1 {
		t.Fatalf("Migrate = %d moved, %d dropped, %v; want 3, 1", moved, dropped, err)
	}
	for _, want := range []Entry{only, newerLegacy, newerCurrent, overReconciled} {
		got, err := s.Get(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !equal(got, want) {
			t.Errorf("after Migrate %s = %+v\nwant %+v", want.ID, got, want)
		}
	}
	if ids, _ := s.IDs(ctx, "pandapon"); len(ids) != 3 {
		t.Errorf("pandapon index = %v, want both pandapon entries", ids)
	}
	if n, _ := s.Count(ctx, ""); n != 4 {
		t.Errorf("Count = %d, want 4", n)
	}
	if keys, _ := rdb.Keys(ctx, PrefixLegacy+"*").Result(); len(keys) != 0 {
		t.Errorf("legacy keys left: %v", keys)
	}
	next, err := s.Put(ctx, entry("pandapon:3", "pandapon", t0))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Entry{only, newerLegacy, newerCurrent, overReconciled} {
		if next.Seq <= e.Seq {
			t.Errorf("Seq after Migrate = %d, not above the migrated %d", next.Seq, e.Seq)
		}
	}
	if moved, dropped, err := s.Migrate(ctx); moved+dropped != 0 || err != nil {
		t.Errorf("second Migrate = %d, %d, %v; want nothing", moved, dropped, err)
	}
}

// TestStoreOnCluster: every operation of the store runs on a real Redis
// Cluster, its keys in one slot.
func TestStoreOnCluster(t *testing.T) {
	t.Parallel()
	c := redistest.NewCluster(t)
	rc := c.Client(t)
	s := New(rc)
	ctx := t.Context()
	a, err := s.Put(ctx, entry("pandapon:1", "pandapon", t0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, entry("meari:1:1:2", "meari", t0.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	// A provider change moves the entry between provider indexes.
	moved := entry("meari:1:1:3", "meari", t0.Add(2*time.Second))
	if _, err := s.Put(ctx, moved); err != nil {
		t.Fatal(err)
	}
	moved.Provider = "pandapon"
	if _, err := s.Put(ctx, moved); err != nil {
		t.Fatal(err)
	}
	list, total, err := s.List(ctx, ListOptions{Provider: "pandapon"})
	if err != nil || total != 2 || len(list) != 2 || list[0].ID != "pandapon:1" {
		t.Fatalf("List(pandapon) = %v, %d, %v", list, total, err)
	}
	if ok, err := s.Remove(ctx, a.ID, a.Seq); !ok || err != nil {
		t.Fatalf("Remove = %v, %v", ok, err)
	}
	if n, err := s.Purge(ctx, "test", "meari:1:1:2", "meari:1:1:3"); n != 2 || err != nil {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	if n, err := s.Count(ctx, ""); n != 0 || err != nil {
		t.Fatalf("Count = %d, %v", n, err)
	}
	if moved, dropped, err := s.Migrate(ctx); moved+dropped != 0 || err != nil {
		t.Errorf("Migrate on a Cluster = %d, %d, %v", moved, dropped, err)
	}
	if slot := rc.ClusterKeySlot(ctx, s.entriesKey()).Val(); slot != rc.ClusterKeySlot(ctx, s.seqKey()).Val() || slot != rc.ClusterKeySlot(ctx, s.indexKey("meari")).Val() {
		t.Errorf("the store's keys are in more than one slot")
	}
}

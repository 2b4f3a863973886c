package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cancelworker/cancelworker/providers/meari"
)

// stub is the upstream of every run: Meari's cancel endpoint, answering
// 1001 after a fixed delay to every correctly signed request, and counting
// the calls per order so that a run can prove each order was cancelled
// exactly once. It runs in its own process on one P (GOMAXPROCS=1), so
// that its CPU use is bounded and the same for every contender.
type stub struct {
	secret string

	conns atomic.Int64 // TCP connections accepted since the last reset
	// From each call's handler start to its reply being written, summed
	// over the calls since the last reset: the stub's own share of a call.
	held, heldNs atomic.Int64

	mu      sync.Mutex
	delay   time.Duration
	calls   int
	bad     int              // requests that failed the signature check
	first   map[string]int64 // orderNum → first arrival, Unix nanoseconds
	repeats map[string]int   // orderNum → calls beyond the first
}

// stubStats is what GET /stats answers.
type stubStats struct {
	Calls   int              `json:"calls"`
	Conns   int64            `json:"conns"` // TCP connections accepted
	Held    int64            `json:"held"`  // calls answered, and their time in the handler
	HeldNs  int64            `json:"held_ns"`
	Bad     int              `json:"bad"`
	Orders  int              `json:"orders"`
	Repeats map[string]int   `json:"repeats"`
	Arrived map[string]int64 `json:"arrived,omitempty"`
}

func runStub(addr string) error {
	s := &stub{secret: os.Getenv(envSecret), first: map[string]int64{}, repeats: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+meari.CancelPath, s.cancel)
	mux.HandleFunc("POST /reset", s.reset)
	mux.HandleFunc("GET /stats", s.stats)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		// Counted per contender, to show that each reuses its
		// connections (about its concurrency), not one per call.
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		}}
	return srv.ListenAndServe()
}

func (s *stub) cancel(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	now := start.UnixNano()
	var req meari.Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	ok := req.Signature == meari.Sign(req, s.secret, meari.SignSorted)
	s.mu.Lock()
	s.calls++
	switch {
	case !ok:
		s.bad++
	case s.first[req.OrderNum] == 0:
		s.first[req.OrderNum] = now
	default:
		s.repeats[req.OrderNum]++
	}
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		_ = hold(r.Context(), delay)
	}
	w.Header().Set("Content-Type", "application/json")
	reply := `{"resultCode":"1001"}`
	if !ok {
		reply = `{"resultCode":"1023"}`
	}
	_, _ = w.Write([]byte(reply))
	s.held.Add(1)
	s.heldNs.Add(int64(time.Since(start)))
}

func (s *stub) reset(w http.ResponseWriter, r *http.Request) {
	d, err := time.ParseDuration(r.URL.Query().Get("delay"))
	if err != nil {
		http.Error(w, "delay: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.delay, s.calls, s.bad = d, 0, 0
	s.first, s.repeats = map[string]int64{}, map[string]int{}
	s.conns.Store(0)
	s.held.Store(0)
	s.heldNs.Store(0)
	s.mu.Unlock()
}

func (s *stub) stats(w http.ResponseWriter, r *http.Request) {
	arrivals, _ := strconv.ParseBool(r.URL.Query().Get("arrivals"))
	s.mu.Lock()
	st := stubStats{Calls: s.calls, Conns: s.conns.Load(), Held: s.held.Load(), HeldNs: s.heldNs.Load(), Bad: s.bad, Orders: len(s.first), Repeats: s.repeats}
	if arrivals {
		st.Arrived = s.first
	}
	b, err := json.Marshal(st)
	s.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestHoldWaitsTheDelay(t *testing.T) {
	for range 5 {
		start := time.Now()
		if err := hold(context.Background(), 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < 20*time.Millisecond {
			t.Fatalf("hold(20ms) returned after %v", el)
		}
	}
}

func TestHoldEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	start := time.Now()
	err := hold(ctx, time.Minute)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("hold with a cancelled context: %v, want context.Canceled", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("hold returned %v after its context ended", el)
	}
}

// A waiter due before the one the timer is set for is woken at its own
// time, not the later one's; none is woken early.
func TestHoldEarlierWaiterAfterLater(t *testing.T) {
	late := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		_ = hold(context.Background(), 2*time.Second)
		late <- time.Since(start)
	}()
	time.Sleep(50 * time.Millisecond) // the 2 s waiter is queued and armed for
	early := time.Now()
	if err := hold(context.Background(), 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(early); el < 20*time.Millisecond || el > time.Second {
		t.Fatalf("a 20ms hold queued behind a 2s one took %v", el)
	}
	if el := <-late; el < 2*time.Second {
		t.Fatalf("the 2s hold returned after %v", el)
	}
}

func TestHoldManyWaiters(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := time.Duration(1+i%40) * time.Millisecond
			start := time.Now()
			if err := hold(context.Background(), d); err != nil {
				errs <- err.Error()
			}
			if el := time.Since(start); el < d {
				errs <- fmt.Sprintf("hold(%v) returned after %v", d, el)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

package main

import (
	"context"
	"errors"
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

//go:build !linux

package main

import (
	"context"
	"time"
)

// hold waits d, or until ctx ends (see hold_linux.go for why Linux waits
// on a timerfd instead).
func hold(ctx context.Context, d time.Duration) error { return sleepCtx(ctx, d) }

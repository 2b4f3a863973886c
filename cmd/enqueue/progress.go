package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

const (
	// progressEvery is how many lines pass between two progress lines
	// when stderr is not a terminal.
	progressEvery = 1000
	// progressInterval is the longest time between two progress lines,
	// while something changes.
	progressInterval = 2 * time.Second
	// barRefresh is the shortest time between two redraws of the bar.
	barRefresh = 100 * time.Millisecond
)

// progress shows how far enqueue file has got. Its methods are called
// from one goroutine.
type progress interface {
	// update is called after each line; offset is the bytes read so far.
	update(s *fileSummary, offset int64)
	// tick is called every progressInterval, even when no line came.
	tick(s *fileSummary)
	// print writes a message around the progress display.
	print(func(w io.Writer))
	// done is called once, after the last line.
	done(s *fileSummary)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress returns a progress bar when stderr is a terminal, else
// plain periodic lines. size is the input's size in bytes, -1 if unknown.
func (a *app) newProgress(size int64) progress {
	if isTerminal(a.stderr) {
		return newBarProgress(a.stderr, size)
	}
	return &lineProgress{w: a.stderr, last: time.Now()}
}

// lineProgress writes a line every progressEvery lines, or every
// progressInterval while lines come.
type lineProgress struct {
	w       io.Writer
	last    time.Time
	printed int // s.Lines at the last line written
}

func (p *lineProgress) update(s *fileSummary, _ int64) {
	if s.Lines%progressEvery == 0 {
		p.write(s)
	}
}

func (p *lineProgress) tick(s *fileSummary) {
	if s.Lines != p.printed && time.Since(p.last) >= progressInterval {
		p.write(s)
	}
}

func (p *lineProgress) write(s *fileSummary) {
	fmt.Fprintf(p.w, "enqueue file: %d lines: %s\n", s.Lines, s.counts())
	p.last, p.printed = time.Now(), s.Lines
}

func (p *lineProgress) print(f func(w io.Writer)) { f(p.w) }

func (p *lineProgress) done(*fileSummary) {}

// barProgress draws a progress bar over the bytes read, or a spinner when
// the size is unknown, with the counts as its description.
type barProgress struct {
	w    io.Writer
	bar  *progressbar.ProgressBar
	last time.Time
}

func newBarProgress(w io.Writer, size int64) *barProgress {
	bar := progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("enqueue file"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(barRefresh),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSpinnerType(14),
	)
	return &barProgress{w: w, bar: bar}
}

func (p *barProgress) update(s *fileSummary, offset int64) {
	if time.Since(p.last) < barRefresh {
		return
	}
	p.last = time.Now()
	p.bar.Describe(fmt.Sprintf("%d lines: %s", s.Lines, s.counts()))
	_ = p.bar.Set64(offset) // only fails past the size of a growing file: nothing to show then
}

func (p *barProgress) tick(*fileSummary) {}

func (p *barProgress) print(f func(w io.Writer)) {
	_ = p.bar.Clear() // a failed clear leaves a partial bar on screen, nothing worse
	f(p.w)
}

func (p *barProgress) done(*fileSummary) {
	_ = p.bar.Finish() // clears the bar; the summary follows on stdout
}

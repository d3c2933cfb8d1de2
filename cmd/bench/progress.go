package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress shows long work: a redrawn bar with rate and ETA on a
// terminal, a plain line every 10% (or 30 s) otherwise, so logs stay
// readable.
type progress struct {
	w        io.Writer
	terminal bool

	mu        sync.Mutex
	task      string
	start     time.Time
	lastPrint time.Time
	lastPct   int
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		p.terminal = term.IsTerminal(int(f.Fd()))
	}
	return p
}

func (p *progress) update(task string, done, total int, note string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if task != p.task {
		p.task, p.start, p.lastPrint, p.lastPct = task, now, time.Time{}, -1
	}
	elapsed := now.Sub(p.start).Seconds()
	rate, eta := 0.0, "?"
	if elapsed > 0.05 && done > 0 {
		rate = float64(done) / elapsed
		eta = time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100 * done / max(total, 1)
	if p.terminal {
		if now.Sub(p.lastPrint) < 100*time.Millisecond && done < total {
			return
		}
		const width = 30
		fill := width * done / max(total, 1)
		bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
		fmt.Fprintf(p.w, "\r%-32.32s [%s] %d/%d %.1f it/s ETA %s %s\x1b[K", task, bar, done, total, rate, eta, note)
		if done >= total {
			fmt.Fprintln(p.w)
		}
		p.lastPrint = now
		return
	}
	if pct/10 == p.lastPct/10 && now.Sub(p.lastPrint) < 30*time.Second && done < total {
		return
	}
	fmt.Fprintf(p.w, "%s: %d/%d (%d%%) %.1f it/s ETA %s %s\n", task, done, total, pct, rate, eta, note)
	p.lastPrint, p.lastPct = now, pct
}

package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/cancelworker/cancelworker/internal/dlq"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// dlqCollector reports the dead-letter queue's size per provider, read from
// Redis at scrape time.
type dlqCollector struct {
	store     *dlq.Store
	providers []string
	timeout   time.Duration
	entries   *prometheus.Desc
}

func newDLQCollector(store *dlq.Store, providers []string, timeout time.Duration) *dlqCollector {
	return &dlqCollector{
		store:     store,
		providers: providers,
		timeout:   timeout,
		entries: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "dlq_entries"),
			"Entries in the dead-letter queue, by provider.", []string{"provider"}, nil),
	}
}

// Describe sends the collector's one descriptor.
func (c *dlqCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.entries }

// Collect counts each provider's entries; on an error or timeout it sends
// an invalid metric, which leaves the gauge out of the scrape.
func (c *dlqCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := bounded(c.timeout, func(ctx context.Context) ([]int64, error) {
		counts := make([]int64, len(c.providers))
		for i, p := range c.providers {
			n, err := c.store.Count(ctx, p)
			if err != nil {
				return nil, err
			}
			counts[i] = n
		}
		return counts, nil
	})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.entries, fmt.Errorf("dead-letter queue size: %w", err))
		return
	}
	for i, p := range c.providers {
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(counts[i]), p)
	}
}

// bounded runs f and waits for it at most timeout. f runs in its own
// goroutine with a context that ends at the timeout, because a go-redis
// client honours context deadlines only with ContextTimeoutEnabled, and
// asynq's Inspector takes no context at all: after a timeout f ends on the
// client's own timeouts.
func bounded[T any](timeout time.Duration, f func(ctx context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer cancel()
		v, err := f(ctx)
		done <- result{v, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.v, r.err
	case <-timer.C:
		var zero T
		return zero, fmt.Errorf("no answer from Redis within %s", timeout)
	}
}

// queueCollector reports the asynq queues, read at scrape time. Its metric
// names are those of asynq's own exporter (github.com/hibiken/asynq/x/metrics),
// so dashboards and asynqmon's Prometheus charts built for it work, except
// asynq_queue_paused, a 0/1 gauge.
type queueCollector struct {
	insp    *asynq.Inspector
	queues  []string
	timeout time.Duration

	tasks, size, latency, memory, processed, failed, paused *prometheus.Desc
}

func newQueueCollector(insp *asynq.Inspector, queues []string, timeout time.Duration) *queueCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("asynq", "", name), help, append([]string{"queue"}, labels...), nil)
	}
	return &queueCollector{
		insp: insp, queues: queues, timeout: timeout,
		tasks:     desc("tasks_enqueued_total", "Tasks in a queue, by state (pending, active, scheduled, retry, archived, completed).", "state"),
		size:      desc("queue_size", "Tasks in a queue, all states but completed."),
		latency:   desc("queue_latency_seconds", "How long the oldest pending task of a queue has waited."),
		memory:    desc("queue_memory_usage_approx_bytes", "Approximate Redis memory used by a queue, by sampling."),
		processed: desc("tasks_processed_total", "Tasks processed by a queue's workers, succeeded or failed."),
		failed:    desc("tasks_failed_total", "Task attempts that failed, by queue."),
		paused:    desc("queue_paused", "1 if the queue is paused, else 0."),
	}
}

// Describe sends the collector's descriptors.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.tasks, c.size, c.latency, c.memory, c.processed, c.failed, c.paused} {
		ch <- d
	}
}

// Collect reads every queue; on an error or timeout it sends an invalid
// metric, which leaves the queue metrics out of the scrape.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	infos, err := bounded(c.timeout, func(context.Context) ([]*asynq.QueueInfo, error) { return c.read() })
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.size, fmt.Errorf("asynq queues: %w", err))
		return
	}
	for _, q := range infos {
		for _, s := range []struct {
			state string
			n     int
		}{{"pending", q.Pending}, {"active", q.Active}, {"scheduled", q.Scheduled}, {"retry", q.Retry}, {"archived", q.Archived}, {"completed", q.Completed}} {
			ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.GaugeValue, float64(s.n), q.Queue, s.state)
		}
		paused := 0.0
		if q.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(q.Size), q.Queue)
		ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, q.Latency.Seconds(), q.Queue)
		ch <- prometheus.MustNewConstMetric(c.memory, prometheus.GaugeValue, float64(q.MemoryUsage), q.Queue)
		ch <- prometheus.MustNewConstMetric(c.processed, prometheus.CounterValue, float64(q.ProcessedTotal), q.Queue)
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(q.FailedTotal), q.Queue)
		ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, paused, q.Queue)
	}
}

// read returns the info of every configured queue; one that does not exist
// yet (no task was ever enqueued to it) reads as empty.
func (c *queueCollector) read() ([]*asynq.QueueInfo, error) {
	existing, err := c.insp.Queues()
	if err != nil {
		return nil, err
	}
	exists := map[string]bool{}
	for _, q := range existing {
		exists[q] = true
	}
	infos := make([]*asynq.QueueInfo, 0, len(c.queues))
	for _, q := range c.queues {
		if !exists[q] {
			infos = append(infos, &asynq.QueueInfo{Queue: q})
			continue
		}
		info, err := c.insp.GetQueueInfo(q)
		if err != nil {
			return nil, fmt.Errorf("queue %s: %w", q, err)
		}
		infos = append(infos, info)
	}
	return infos, nil
}

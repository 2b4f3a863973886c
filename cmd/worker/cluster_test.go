package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cancelworker/cancelworker/internal/admin"
	"github.com/cancelworker/cancelworker/internal/intake"
	"github.com/cancelworker/cancelworker/internal/redistest"
	"github.com/cancelworker/cancelworker/internal/workertest"
	"github.com/cancelworker/cancelworker/providers/meari"
	"github.com/cancelworker/cancelworker/providers/sandbox"
	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// providerEnv is the worker's settings for both providers on the sandbox
// at base, with the test accounts.
func providerEnv(base string) map[string]string {
	return map[string]string{
		"MEARI_BASE_URL": base, "MEARI_PARTNER_KEY": workertest.MeariPartnerKey, "MEARI_PARTNER_SECRET": workertest.MeariPartnerSecret,
		"MEARI_SOURCE_APP": strconv.Itoa(workertest.SourceApp), "MEARI_SIGN_MODE": string(meari.SignSorted),
		"PANDAPON_BASE_URL": base, "PANDAPON_ACCESS_KEY": workertest.PandaPonAccessKey,
		"PANDAPON_ACCESS_SECRET": workertest.PandaPonSecret, "PANDAPON_USER_ID": workertest.PandaPonUserID,
	}
}

// TestCluster runs the worker and the intake as a user would on a real
// Redis Cluster of three masters, with MEARI_QUEUE_SHARDS and
// PANDAPON_QUEUE_SHARDS at 3: orders posted to the intake are cancelled or
// dead-lettered, a repeat is refused, the status endpoint, /metrics, the
// monitoring UI and the dead-letter page see every shard.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := redistest.NewCluster(t)
	sb, base := workertest.Upstream(t)
	env := providerEnv(base)
	for k, v := range map[string]string{
		"REDIS_CLUSTER_ADDRS": c.URL(), "MEARI_QUEUE_SHARDS": "3", "PANDAPON_QUEUE_SHARDS": "3",
		"ADMIN_ADDR": "127.0.0.1:0", "LOG_FORMAT": "json", "WORKER_CONCURRENCY": "16",
	} {
		env[k] = v
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wout, werr syncBuffer
	exited := make(chan int, 2)
	go func() { exited <- run(ctx, nil, envFunc(env), &wout, &werr) }()
	var ierr syncBuffer
	go func() { exited <- intake.Main(ctx, []string{"--addr", "127.0.0.1:0"}, envFunc(env), &ierr) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		<-exited
	})
	adminURL := "http://" + logField(t, &werr, "admin server listening", "addr", 20*time.Second)
	intakeURL := "http://" + logField(t, &ierr, "listening", "addr", 20*time.Second)
	if !strings.Contains(werr.String(), `"redis_url":"cluster `+c.URL()+`"`) {
		t.Errorf("the worker's start-up line does not name the Cluster:\n%s", werr.String())
	}

	// 30 orders of each provider; every 10th refused for good.
	no := false
	var items []string
	refusedOrders := map[string]bool{}
	for i := range 30 {
		m, p := fmt.Sprintf("C-%02d", i), strconv.Itoa(2542285634920880000+i)
		if i%10 == 0 {
			sb.Script("meari", m, sandbox.MeariCode("4001"))
			sb.Script("pandapon", p, sandbox.PandaPonCode(200, &no))
			refusedOrders[m], refusedOrders[p] = true, true
		}
		items = append(items, fmt.Sprintf(`{"provider":"meari","userAccount":"u","orderNum":%q,"orderType":1}`, m), fmt.Sprintf(`{"provider":"pandapon","orderId":%s}`, p))
	}
	code, body, _ := postJSON(intakeURL+"/v1/cancellations", "["+strings.Join(items, ",")+"]")
	if code != http.StatusAccepted || strings.Count(body, `"state":"queued"`) != 60 {
		t.Fatalf("POST 60 orders: %d %s", code, body)
	}
	shards, queues := tasks.Shards{Meari: 3, PandaPon: 3}, map[string]bool{}
	workertest.Wait(t, "every order settled", func() (bool, string) {
		missing := 0
		for i := range 30 {
			m, p := fmt.Sprintf("C-%02d", i), strconv.Itoa(2542285634920880000+i)
			for _, o := range []struct{ prov, order string }{{"meari", m}, {"pandapon", p}} {
				if refusedOrders[o.order] {
					if len(sb.Calls(o.prov, o.order)) == 0 {
						missing++
					}
				} else if !sb.Cancelled(o.prov, o.order) {
					missing++
				}
			}
		}
		return missing == 0, fmt.Sprintf("%d missing", missing)
	})
	// The status endpoint finds each on its shard; the refused ones are
	// dead-lettered there.
	for _, o := range []struct{ prov, order, state string }{
		{"meari", "C-10", "dead-lettered"}, {"pandapon", "2542285634920880020", "dead-lettered"}, {"meari", "C-11", "completed"},
	} {
		var st struct {
			State  string `json:"state"`
			Queue  string `json:"queue"`
			TaskID string `json:"task_id"`
		}
		url := intakeURL + "/v1/cancellations/" + o.prov + "/" + o.order
		if o.prov == "meari" {
			url += "?orderType=1"
		}
		workertest.Wait(t, o.order+" "+o.state, func() (bool, string) {
			_, b := httpGet(t, url)
			_ = json.Unmarshal([]byte(b), &st)
			return st.State == o.state, b
		})
		if want := shards.Queue(o.prov, st.TaskID); st.Queue != want || !strings.Contains(want, ":") {
			t.Errorf("status of %s: queue %q, want its shard %q", st.TaskID, st.Queue, want)
		}
		queues[st.Queue] = true
	}
	// A repeat is refused: one cancel per order.
	code, body, _ = postJSON(intakeURL+"/v1/cancellations", `{"provider":"meari","userAccount":"u","orderNum":"C-11","orderType":1}`)
	if code != http.StatusAccepted || !strings.Contains(body, `"state":"already_cancelled"`) {
		t.Errorf("repeat of C-11: %d %s", code, body)
	}
	if n := len(sb.Calls("meari", "C-11")); n != 1 {
		t.Errorf("C-11 cancelled %d times, want 1", n)
	}

	// /metrics reports each shard; the monitoring UI's API lists them.
	workertest.Wait(t, "/metrics to count the completed tasks of every shard", func() (bool, string) {
		_, b := httpGet(t, adminURL+admin.MetricsPath)
		for _, q := range shards.All() {
			if !strings.Contains(b, `asynq_tasks_enqueued_total{queue="`+q+`",state="completed"}`) {
				return false, "no series for " + q
			}
		}
		return strings.Contains(b, `cancelworker_dlq_entries{provider="meari"} 3`) && strings.Contains(b, `cancelworker_dlq_entries{provider="pandapon"} 3`), "dlq gauges"
	})
	if code, b := httpGet(t, adminURL+admin.MonitoringPath+"api/queues"); code != 200 || !strings.Contains(b, `"cancel:meari:2"`) || !strings.Contains(b, `"cancel:pandapon:0"`) {
		t.Errorf("GET %sapi/queues: %d %.500s", admin.MonitoringPath, code, b)
	}
	if code, b := httpGet(t, adminURL+admin.MonitoringPath); code != 200 || !strings.Contains(b, "FLAG_READ_ONLY") {
		t.Errorf("GET %s: %d", admin.MonitoringPath, code)
	}
	code, b := httpGet(t, adminURL+admin.DLQPath)
	if code != 200 || !strings.Contains(b, "C-20") || !strings.Contains(b, "2542285634920880020") || !strings.Contains(b, "cancel:pandapon:2") {
		t.Errorf("GET %s: %d %.2000s", admin.DLQPath, code, b)
	}
	if code, b := httpGet(t, adminURL+"/readyz"); code != 200 {
		t.Errorf("/readyz %d %s", code, b)
	}
	t.Logf("status lookups answered from queues %v", queues)
}

// TestSeveralWorkers runs three worker processes (the real binary) on one
// Redis and then on a Cluster with three shards per provider, and sends
// them 600 cancellations that all succeed: every order is cancelled once,
// none twice, and every process does some of the work.
func TestSeveralWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the worker binary")
	}
	t.Parallel()
	bin := buildWorker(t)
	for _, tc := range []struct {
		name string
		conn func(t *testing.T) (env []string, rdb redis.UniversalClient, shards tasks.Shards)
	}{
		{"one Redis", func(t *testing.T) ([]string, redis.UniversalClient, tasks.Shards) {
			srv := redistest.New(t)
			if srv.Kind == redistest.KindMiniredis {
				t.Skip("three processes need a Redis they can all reach")
			}
			return []string{"REDIS_URL=" + srv.URL}, srv.Client(t), tasks.Shards{}
		}},
		{"Cluster, 3 shards", func(t *testing.T) ([]string, redis.UniversalClient, tasks.Shards) {
			c := redistest.NewCluster(t)
			return []string{"REDIS_CLUSTER_ADDRS=" + c.URL(), "MEARI_QUEUE_SHARDS=3", "PANDAPON_QUEUE_SHARDS=3"}, c.Client(t), tasks.Shards{Meari: 3, PandaPon: 3}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			connEnv, rdb, shards := tc.conn(t)
			sb, base := workertest.Upstream(t)
			env := append(os.Environ(), connEnv...)
			for k, v := range providerEnv(base) {
				env = append(env, k+"="+v)
			}
			env = append(env, "ADMIN_ADDR=127.0.0.1:0", "LOG_FORMAT=json", "WORKER_CONCURRENCY=8")
			var logs []*syncBuffer
			for range 3 {
				_, l := startWorker(t, bin, env)
				logs = append(logs, l)
			}
			var admins []string
			for _, l := range logs {
				admins = append(admins, "http://"+logField(t, l, "admin server listening", "addr", 30*time.Second))
			}
			enq := tasks.NewEnqueuer(rdb, shards)
			const n = 300 // per provider
			var wg sync.WaitGroup
			errs := make(chan error, 2*n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					mt, _ := tasks.NewMeariCancelTask(tasks.MeariCancel{SourceApp: workertest.SourceApp, UserAccount: "u", OrderType: 1, OrderNum: fmt.Sprintf("W-%03d", i)})
					id, _ := tasks.ParseOrderID(strconv.Itoa(2542285634920870000 + i))
					pt, _ := tasks.NewPandaPonCancelTask(tasks.PandaPonCancel{OrderID: id})
					for _, task := range []*asynq.Task{mt, pt} {
						if res, err := enq.Enqueue(context.Background(), task, false); err != nil || res.AlreadyQueued {
							errs <- fmt.Errorf("enqueue %s: %+v, %v", task.Type(), res, err)
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			workertest.WaitUpTo(t, 2*time.Minute, "600 cancellations", func() (bool, string) {
				return sb.TotalCalls() >= 2*n, fmt.Sprintf("%d calls", sb.TotalCalls())
			})
			twice := 0
			for i := range n {
				if len(sb.Calls("meari", fmt.Sprintf("W-%03d", i))) != 1 {
					twice++
				}
				if len(sb.Calls("pandapon", strconv.Itoa(2542285634920870000+i))) != 1 {
					twice++
				}
			}
			if twice != 0 || sb.TotalCalls() != 2*n {
				t.Errorf("%d orders not cancelled exactly once; %d calls for %d orders", twice, sb.TotalCalls(), 2*n)
			}
			var share []int
			for i, a := range admins {
				_, b := httpGet(t, a+admin.MetricsPath)
				got := 0
				for _, prov := range []string{"meari", "pandapon"} {
					prefix := `cancelworker_attempts_total{class="success",code="",provider="` + prov + `"} `
					for l := range strings.Lines(b) {
						if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
							k, _ := strconv.Atoi(v)
							got += k
						}
					}
				}
				share = append(share, got)
				if got == 0 {
					t.Errorf("worker %d cancelled nothing:\n%s", i, logs[i].String())
				}
			}
			t.Logf("%s: 3 workers cancelled %v of %d orders, none twice", tc.name, share, 2*n)
		})
	}
}

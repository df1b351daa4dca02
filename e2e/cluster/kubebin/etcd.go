package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/version"
)

func kubeVersion() string { return version.Get().GitVersion }

// runEtcd starts a single-member etcd with the embed package at the version
// k8s.io/kubernetes pins, so the API server talks to the etcd it is tested with.
func runEtcd(args []string) int {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "default.etcd", "data directory")
	clientURL := fs.String("listen-client-urls", "http://127.0.0.1:2379", "client URL (one)")
	peerURL := fs.String("listen-peer-urls", "http://127.0.0.1:2380", "peer URL (one)")
	metricsURL := fs.String("listen-metrics-urls", "", "metrics URL (optional, one)")
	quota := fs.Int64("quota-backend-bytes", 2<<30, "backend quota in bytes")
	unsafeNoFsync := fs.Bool("unsafe-no-fsync", false, "skip fsync (test clusters only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := embed.NewConfig()
	cfg.Name = "kubesweep"
	cfg.Dir = *dataDir
	cu, err := url.Parse(*clientURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	pu, err := url.Parse(*peerURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	if *metricsURL != "" {
		mu, err := url.Parse(*metricsURL)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		cfg.ListenMetricsUrls = []url.URL{*mu}
	}
	cfg.QuotaBackendBytes = *quota
	cfg.UnsafeNoFsync = *unsafeNoFsync
	cfg.LogLevel = "warn"

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 1
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintln(os.Stderr, "etcd: ready to serve client requests on", cu.String())
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		fmt.Fprintln(os.Stderr, "etcd: not ready after 60s")
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		fmt.Fprintln(os.Stderr, "etcd: stopping on", s)
		return 0
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 1
	}
}

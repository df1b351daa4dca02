// CoreDNS with the plugins the real node's cluster DNS needs, and no others: names of
// Services and pods from the API server (kubernetes), bound to the node address
// (bind), health and readiness for the harness, a small cache. No forward plugin, so
// no query leaves the machine. Setting dnsserver.Directives is CoreDNS's own way of
// choosing plugins at compile time (the order is that of its plugin.cfg).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

var directives = []string{
	"bind", "ready", "health", "errors", "log", "loadbalance", "cache", "kubernetes",
}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }

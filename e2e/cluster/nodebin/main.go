// Command nodebin is the real node's kubelet and kube-proxy in one binary: the first
// argument (or the name it is invoked by, for symlinks) picks the component.
//
//	nodebin kubelet|proxy|version [flags...]
//
// One link instead of two: both share most of their packages with each other and
// with ../kubebin, so the warm Go build cache makes this build short.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/component-base/version"

	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

var components = map[string]func() int{
	"kubelet": func() int { return cli.Run(kubelet.NewKubeletCommand(context.Background())) },
	"proxy":   func() int { return cli.Run(proxy.NewProxyCommand()) },
	"version": func() int { fmt.Println(version.Get().GitVersion); return 0 },
}

func main() {
	name := strings.TrimPrefix(filepath.Base(os.Args[0]), "kube-")
	args := os.Args[1:]
	if _, ok := components[name]; !ok {
		if len(args) == 0 {
			fmt.Fprintln(os.Stderr, "usage: nodebin kubelet|proxy|version [flags...]")
			os.Exit(2)
		}
		name, args = strings.TrimPrefix(args[0], "kube-"), args[1:]
	}
	run, ok := components[name]
	if !ok {
		fmt.Fprintln(os.Stderr, "usage: nodebin kubelet|proxy|version [flags...]")
		os.Exit(2)
	}
	// cobra reads os.Args[1:]; present the component as if it were the program.
	os.Args = append([]string{name}, args...)
	os.Exit(run())
}

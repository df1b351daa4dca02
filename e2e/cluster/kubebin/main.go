// Command kubebin is the whole local control plane in one binary: the first
// argument (or the name it is invoked by, for symlinks) picks the component.
//
//	kubebin apiserver|controller-manager|scheduler|kubectl|etcd [flags...]
//
// One link instead of five keeps the cold build on two cores affordable: the
// Kubernetes packages the components share are compiled and linked once.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	_ "time/tzdata" // CronJob time zones

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"

	_ "k8s.io/client-go/plugin/pkg/client/auth"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"

	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

var components = map[string]func(args []string) int{
	"apiserver":          runAPIServer,
	"controller-manager": runControllerManager,
	"scheduler":          runScheduler,
	"kubectl":            runKubectl,
	"etcd":               runEtcd,
	"version":            func([]string) int { fmt.Println(kubeVersion()); return 0 },
}

func main() {
	name := strings.TrimPrefix(filepath.Base(os.Args[0]), "kube-")
	args := os.Args[1:]
	if _, ok := components[name]; !ok {
		if len(args) == 0 {
			usage()
			os.Exit(2)
		}
		name, args = strings.TrimPrefix(args[0], "kube-"), args[1:]
	}
	run, ok := components[name]
	if !ok {
		usage()
		os.Exit(2)
	}
	// cobra reads os.Args[1:]; present the component as if it were the program.
	os.Args = append([]string{name}, args...)
	os.Exit(run(args))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kubebin apiserver|controller-manager|scheduler|kubectl|etcd|version [flags...]")
}

func runAPIServer([]string) int { return cli.Run(apiserver.NewAPIServerCommand()) }

func runControllerManager([]string) int {
	return cli.Run(controllermanager.NewControllerManagerCommand())
}

func runScheduler([]string) int { return cli.Run(scheduler.NewSchedulerCommand()) }

func runKubectl([]string) int {
	logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) //nolint:errcheck
	command := kubectlcmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		kubectlutil.CheckErr(err)
	}
	return 0
}

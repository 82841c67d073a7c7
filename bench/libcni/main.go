// bench-libcni times plugin chains as containerd, CRI-O and podman run them: through
// libcni, the library they embed (its plugin lookup, configuration building, prevResult
// chaining, os/exec spawn and on-disk result cache), on a Go clock. The other sections
// time plugins from Node, whose spawn costs about a millisecond and 0.8 ms of CPU per
// plugin (Go's: 0.2 ms of CPU, measured here), and serializes every spawn on one thread.
//
//	bench-libcni -conf <conflist> -cni-path <dirs> -cache-dir <dir> -netns <p1,p2,...> [-ports] sequential|parallel
//
// sequential: one untimed ADD/DEL pair on the first namespace, then for each namespace
// an ADD and at once its DEL, each timed; prints {"add": [ms...], "del": [ms...],
// "failures": [...]}. parallel: every namespace's ADD started at once, one goroutine
// each, as a runtime starting a batch of pods; prints {"wallMs": ms, "failures": [...]}.
// -ports gives namespace i the port mapping hostPort 20000+i -> 80/tcp. The plugins get
// this process's environment (TRESTLE_SOCKET included), as libcni passes it on.
//
// Built in GOPATH mode against Debian's golang-github-appc-cni-dev (libcni 1.1.2).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
)

type output struct {
	Add      []float64 `json:"add,omitempty"`
	Del      []float64 `json:"del,omitempty"`
	WallMs   float64   `json:"wallMs,omitempty"`
	Failures []string  `json:"failures"`
}

func ms(since time.Time) float64 {
	return float64(time.Since(since).Nanoseconds()) / 1e6
}

func main() {
	confPath := flag.String("conf", "", "conflist file")
	cniPath := flag.String("cni-path", "", "plugin directories, colon-separated")
	cacheDir := flag.String("cache-dir", "", "libcni's result cache")
	netnsList := flag.String("netns", "", "container namespace paths, comma-separated")
	ports := flag.Bool("ports", false, "a port mapping per container")
	flag.Parse()
	if flag.NArg() != 1 || *confPath == "" || *cniPath == "" || *cacheDir == "" || *netnsList == "" {
		fmt.Fprintln(os.Stderr, "usage: bench-libcni -conf FILE -cni-path DIRS -cache-dir DIR -netns P1,P2,... [-ports] sequential|parallel")
		os.Exit(2)
	}
	list, err := libcni.ConfListFromFile(*confPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(*cniPath), *cacheDir, nil)
	namespaces := strings.Split(*netnsList, ",")
	attachment := func(id string, index int) *libcni.RuntimeConf {
		rt := &libcni.RuntimeConf{ContainerID: id, NetNS: namespaces[index], IfName: "eth0"}
		if *ports {
			rt.CapabilityArgs = map[string]interface{}{"portMappings": []map[string]interface{}{{"hostPort": 20000 + index, "containerPort": 80, "protocol": "tcp"}}}
		}
		return rt
	}
	ctx := context.Background()
	result := output{Failures: []string{}}
	switch flag.Arg(0) {
	case "sequential":
		// A fresh process pays once for what a runtime has long done: loading the
		// plugin's path, the first spawn's set-up.
		warm := attachment("warm", 0)
		if _, err := cni.AddNetworkList(ctx, list, warm); err != nil {
			result.Failures = append(result.Failures, "warm-up ADD: "+err.Error())
		}
		if err := cni.DelNetworkList(ctx, list, warm); err != nil {
			result.Failures = append(result.Failures, "warm-up DEL: "+err.Error())
		}
		for index := range namespaces {
			rt := attachment(fmt.Sprintf("seq-%d", index), index)
			started := time.Now()
			if _, err := cni.AddNetworkList(ctx, list, rt); err != nil {
				result.Failures = append(result.Failures, "ADD: "+err.Error())
				cni.DelNetworkList(ctx, list, rt)
				continue
			}
			result.Add = append(result.Add, ms(started))
			started = time.Now()
			if err := cni.DelNetworkList(ctx, list, rt); err != nil {
				result.Failures = append(result.Failures, "DEL: "+err.Error())
				continue
			}
			result.Del = append(result.Del, ms(started))
		}
	case "parallel":
		var wg sync.WaitGroup
		var mu sync.Mutex
		started := time.Now()
		for index := range namespaces {
			wg.Add(1)
			go func(index int) {
				defer wg.Done()
				if _, err := cni.AddNetworkList(ctx, list, attachment(fmt.Sprintf("par-%d", index), index)); err != nil {
					mu.Lock()
					result.Failures = append(result.Failures, err.Error())
					mu.Unlock()
				}
			}(index)
		}
		wg.Wait()
		result.WallMs = ms(started)
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", flag.Arg(0))
		os.Exit(2)
	}
	encoded, _ := json.Marshal(result)
	fmt.Println(string(encoded))
}

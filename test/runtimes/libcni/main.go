// trestle-libcni drives a CNI configuration list through libcni, the library that
// containerd, CRI-O and podman embed, so the tests see the plugins exactly as those
// runtimes do: libcni's plugin lookup, its VERSION validation, its capability-argument
// injection into runtimeConfig, its prevResult chaining, its result parsing and its
// on-disk result cache (which CHECK and DEL read back).
//
//	trestle-libcni [flags] <add|check|del|validate|gc|status> <conflist> <containerID> <netns> <ifname>
//
// Flags: -cni-path dirs (default $CNI_PATH), -cache-dir dir (required: libcni's default
// is /var/lib/cni, which belongs to the machine's own runtimes), -cap-args JSON (default
// $CAP_ARGS, e.g. {"portMappings":[...]}), -args "K=V;K=V" (default $CNI_ARGS),
// -timeout. ADD prints the result on stdout; validate prints the capabilities and each
// plugin's supported versions. Errors go to stderr and exit 1 (2 for usage errors).
//
// Built in GOPATH mode against Debian's golang-github-appc-cni-dev (libcni 1.1.2).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

func usage() {
	fmt.Fprintf(os.Stderr, "usage: %s [flags] <add|check|del|validate|gc|status> <conflist> [<containerID> <netns> <ifname>]\n", filepath.Base(os.Args[0]))
	flag.PrintDefaults()
}

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "trestle-libcni: "+format+"\n", args...)
	os.Exit(code)
}

// The plugin's own error, when libcni passed one through, so that the caller can
// assert on the CNI error code and not only on libcni's wrapping text.
func reportError(command string, err error) {
	var pluginError *types.Error
	if errors.As(err, &pluginError) {
		if encoded, marshalError := json.Marshal(pluginError); marshalError == nil {
			fmt.Fprintf(os.Stderr, "trestle-libcni: %s: plugin error %s\n", command, encoded)
		}
	}
	fail(1, "%s: %v", command, err)
}

func parseArgs(raw string) ([][2]string, error) {
	var pairs [][2]string
	for _, item := range strings.Split(raw, ";") {
		if item == "" {
			continue
		}
		kv := strings.SplitN(item, "=", 2)
		if len(kv) != 2 {
			return nil, fmt.Errorf("invalid CNI_ARGS pair %q", item)
		}
		pairs = append(pairs, [2]string{kv[0], kv[1]})
	}
	return pairs, nil
}

func main() {
	flag.Usage = usage
	cniPath := flag.String("cni-path", os.Getenv("CNI_PATH"), "plugin directories, colon-separated")
	cacheDir := flag.String("cache-dir", "", "libcni result cache directory (required)")
	capArgs := flag.String("cap-args", os.Getenv("CAP_ARGS"), "capability arguments, a JSON object")
	cniArgs := flag.String("args", os.Getenv("CNI_ARGS"), "CNI_ARGS pairs, K=V;K=V")
	timeout := flag.Duration("timeout", 60*time.Second, "deadline for the whole command")
	flag.Parse()

	positional := flag.Args()
	if len(positional) < 2 {
		usage()
		os.Exit(2)
	}
	command, confPath := positional[0], positional[1]
	if *cacheDir == "" {
		fail(2, "-cache-dir is required")
	}
	if *cniPath == "" {
		fail(2, "-cni-path or CNI_PATH is required")
	}

	list, err := libcni.ConfListFromFile(confPath)
	if err != nil {
		fail(1, "%v", err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(*cniPath), *cacheDir, nil)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	if command == "validate" {
		validate(ctx, cni, list)
		return
	}
	// libcni 1.1.2 predates CNI 1.1.0's GC and STATUS (GCNetworkList and
	// GetStatusNetworkList arrived in libcni 1.2.0); a runtime built on it never sends them.
	if command == "gc" || command == "status" {
		fail(3, "%s: not available: this libcni implements spec %s and has no GCNetworkList/GetStatusNetworkList (added in libcni 1.2.0)", command, version.Current())
	}

	if len(positional) != 5 {
		usage()
		os.Exit(2)
	}
	rt := &libcni.RuntimeConf{ContainerID: positional[2], NetNS: positional[3], IfName: positional[4]}
	if rt.Args, err = parseArgs(*cniArgs); err != nil {
		fail(2, "%v", err)
	}
	if *capArgs != "" {
		if err := json.Unmarshal([]byte(*capArgs), &rt.CapabilityArgs); err != nil {
			fail(2, "invalid capability arguments: %v", err)
		}
	}

	switch command {
	case "add":
		// CRI-O's ocicni validates every list (a VERSION call per plugin) before using it,
		// so ADD does too: a list whose cniVersion a plugin does not claim never runs.
		if _, err := cni.ValidateNetworkList(ctx, list); err != nil {
			reportError("add: validate", err)
		}
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			reportError("add", err)
		}
		if err := result.PrintTo(os.Stdout); err != nil {
			fail(1, "add: printing the result: %v", err)
		}
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			reportError("check", err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			reportError("del", err)
		}
	default:
		usage()
		os.Exit(2)
	}
}

func validate(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList) {
	capabilities, err := cni.ValidateNetworkList(ctx, list)
	if err != nil {
		reportError("validate", err)
	}
	versions := map[string][]string{}
	for _, plugin := range list.Plugins {
		info, err := cni.GetVersionInfo(ctx, plugin.Network.Type)
		if err != nil {
			reportError("validate", err)
		}
		versions[plugin.Network.Type] = info.SupportedVersions()
	}
	encoded, err := json.Marshal(map[string]interface{}{
		"libcniSpecVersion": version.Current(),
		"cniVersion":        list.CNIVersion,
		"capabilities":      capabilities,
		"supportedVersions": versions,
	})
	if err != nil {
		fail(1, "validate: %v", err)
	}
	fmt.Println(string(encoded))
}

// kstatus prints the kstatus verdict (Current, InProgress, Failed, Terminating, ...) of the
// Kubernetes object given as JSON or YAML on standard input, the way Flux and Helm compute it.
// Test helper of image-access-operator; built by hack/tools.sh.
package main

import (
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "read stdin:", err)
		os.Exit(2)
	}
	// Through JSON and Unstructured's own decoder: it keeps integers as int64, as kstatus expects.
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "parse object:", err)
		os.Exit(2)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(js); err != nil {
		fmt.Fprintln(os.Stderr, "decode object:", err)
		os.Exit(2)
	}
	result, err := status.Compute(obj)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compute status:", err)
		os.Exit(2)
	}
	fmt.Printf("%s\t%s\n", result.Status, result.Message)
}

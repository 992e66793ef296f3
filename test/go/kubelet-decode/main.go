// kubelet-decode: the Kubernetes side of registry-db-credential-provider's tests (test/nodes/credentials.test.ts).
// It uses the kubelet's own API types (k8s.io/kubelet/pkg/apis/credentialprovider/v1) and apimachinery's
// codecs, as the kubelet does:
//
//	kubelet-decode request IMAGE   writes the CredentialProviderRequest the kubelet would send for IMAGE
//	kubelet-decode response        reads a CredentialProviderResponse on stdin, decoded strictly (an unknown
//	                               or duplicate field, a wrong kind or apiVersion, an invalid cacheKeyType or
//	                               duration is an error), and writes what it holds as JSON
//
// Exit status 1 with the decoder's message on stderr when the response does not decode.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/kubelet/pkg/apis/credentialprovider/install"
	v1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"
)

func main() {
	scheme := runtime.NewScheme()
	install.Install(scheme)
	codecs := serializer.NewCodecFactory(scheme, serializer.EnableStrict)
	if len(os.Args) == 3 && os.Args[1] == "request" {
		info, _ := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeJSON)
		data, err := runtime.Encode(codecs.EncoderForVersion(info.Serializer, v1.SchemeGroupVersion), &v1.CredentialProviderRequest{Image: os.Args[2]})
		exitOn(err)
		os.Stdout.Write(data)
		return
	}
	if len(os.Args) != 2 || os.Args[1] != "response" {
		fmt.Fprintln(os.Stderr, "usage: kubelet-decode request IMAGE | kubelet-decode response < response.json")
		os.Exit(2)
	}
	data, err := io.ReadAll(os.Stdin)
	exitOn(err)
	obj, gvk, err := codecs.UniversalDecoder(v1.SchemeGroupVersion).Decode(data, nil, nil)
	exitOn(err)
	response, ok := obj.(*v1.CredentialProviderResponse)
	if !ok || gvk.Kind != "CredentialProviderResponse" || gvk.GroupVersion() != v1.SchemeGroupVersion {
		exitOn(fmt.Errorf("decoded a %s (%T), not a %s CredentialProviderResponse", gvk, obj, v1.SchemeGroupVersion))
	}
	switch response.CacheKeyType {
	case v1.ImagePluginCacheKeyType, v1.RegistryPluginCacheKeyType, v1.GlobalPluginCacheKeyType:
	default:
		exitOn(fmt.Errorf("invalid cacheKeyType %q", response.CacheKeyType))
	}
	out := map[string]any{"cacheKeyType": response.CacheKeyType, "auth": response.Auth}
	if response.CacheDuration != nil {
		out["cacheDurationSeconds"] = response.CacheDuration.Duration.Seconds()
	}
	exitOn(json.NewEncoder(os.Stdout).Encode(out))
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

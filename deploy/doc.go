// Package deploy holds ltigrade's Kubernetes deployment: manifests in k8s/,
// Zero to JupyterHub values in z2jh/, the user image in user-image/ (the
// image of ltigrade itself is the Dockerfile at the repository root). It has
// no code; its test checks the files as far as a machine without a cluster
// or a container engine can (docs/kubernetes.md).
package deploy

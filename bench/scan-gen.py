#!/usr/bin/env python3
"""Writes the input of bench/scan-vs-checkov.sh: a multi-document YAML dump of N objects plus the
control-plane files of one node (see usage in scan-vs-checkov.sh).

dump.yaml cycles through ten object shapes, each seeded with one or more of the risks of issue #6
(what ward should report for it is in SHAPES). control-plane/ and control-plane-2/ hold the static pods
and configuration files of two control-plane nodes (CONTROL_PLANE). Every value
that looks like a credential is fake.
"""

import os
import sys

# (name, risks seeded in it, template of one or more documents). {i} is the number of the
# shape's first object, {ns} its namespace.
SHAPES = [
    ("deployment-secretkeyref", ["secret-env-var", "sa-token-automount"], """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api-{i}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: api-{i}}}}}
  template:
    metadata: {{labels: {{app: api-{i}}}}}
    spec:
      containers:
      - name: api
        image: registry.example.com/api:1.{i}
        env:
        - name: API_KEY
          valueFrom:
            secretKeyRef: {{name: api-secret-{i}, key: API_KEY}}
"""),
    ("deployment-envfrom", ["secret-env-var"], """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: worker-{i}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: worker-{i}}}}}
  template:
    metadata: {{labels: {{app: worker-{i}}}}}
    spec:
      automountServiceAccountToken: false
      containers:
      - name: worker
        image: registry.example.com/worker:2.{i}
        envFrom:
        - secretRef: {{name: worker-env-{i}}}
"""),
    ("configmap-credentials", ["secret-like-configmap"], """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: app-config-{i}, namespace: {ns}}}
data:
  LOG_LEVEL: info
  DB_PASSWORD: hunter2-{i}
  aws_access_key_id: AKIAIOSFODNN7EXAMPL{c}
"""),
    ("role-secret-reader", ["rbac-secret-read"], """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: secret-reader-{i}, namespace: {ns}}}
rules:
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: secret-reader-{i}, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: secret-reader-{i}}}
subjects:
- {{kind: ServiceAccount, name: reporter-{i}, namespace: {ns}}}
"""),
    ("clusterrole-escalation", ["rbac-escalation"], """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: escalator-{i}}}
rules:
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["clusterroles", "clusterrolebindings"]
  verbs: ["escalate", "bind"]
- apiGroups: [""]
  resources: ["users", "groups", "serviceaccounts"]
  verbs: ["impersonate"]
"""),
    ("role-pod-creator", ["rbac-implied-secret-access"], """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: deployer-{i}, namespace: {ns}}}
rules:
- apiGroups: ["", "apps"]
  resources: ["pods", "deployments"]
  verbs: ["create", "update"]
"""),
    ("pod-hostpath-privileged", ["hostpath-mount", "privileged-node-access"], """\
apiVersion: v1
kind: Pod
metadata: {{name: node-agent-{i}, namespace: {ns}}}
spec:
  automountServiceAccountToken: false
  hostPID: true
  containers:
  - name: agent
    image: registry.example.com/agent:3.{i}
    securityContext: {{privileged: true}}
    volumeMounts:
    - {{name: kubelet, mountPath: /host/kubelet}}
  volumes:
  - name: kubelet
    hostPath: {{path: /var/lib/kubelet}}
"""),
    ("deployment-literal-credential", ["literal-credential-env"], """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: legacy-{i}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: legacy-{i}}}}}
  template:
    metadata: {{labels: {{app: legacy-{i}}}}}
    spec:
      automountServiceAccountToken: false
      containers:
      - name: legacy
        image: registry.example.com/legacy:4.{i}
        env:
        - name: DB_PASSWORD
          value: s3cr3t-literal-{i}
"""),
    ("pod-secret-volume", ["secret-file-mode", "secret-subpath-mount"], """\
apiVersion: v1
kind: Pod
metadata: {{name: tls-{i}, namespace: {ns}}}
spec:
  automountServiceAccountToken: false
  containers:
  - name: web
    image: registry.example.com/web:5.{i}
    volumeMounts:
    - {{name: tls, mountPath: /etc/tls/tls.key, subPath: tls.key}}
  volumes:
  - name: tls
    secret: {{secretName: tls-{i}, defaultMode: 0644}}
"""),
    ("secret-legacy-token", ["legacy-sa-token-secret"], """\
apiVersion: v1
kind: Secret
metadata:
  name: ci-token-{i}
  namespace: {ns}
  annotations: {{kubernetes.io/service-account.name: ci-{i}}}
type: kubernetes.io/service-account-token
"""),
]

# Two control-plane nodes, as kubeadm lays out /etc/kubernetes: node 1 encrypts Secrets with a
# static aescbc key next to an etcd without TLS; node 2 has no encryption at all.
CONTROL_PLANE = {
    "control-plane/kube-apiserver.yaml": ("""\
apiVersion: v1
kind: Pod
metadata: {name: kube-apiserver, namespace: kube-system}
spec:
  hostNetwork: true
  automountServiceAccountToken: false
  containers:
  - name: kube-apiserver
    image: registry.k8s.io/kube-apiserver:v1.32.0
    command:
    - kube-apiserver
    - --advertise-address=10.0.0.10
    - --authorization-mode=Node,RBAC
    - --etcd-servers=http://127.0.0.1:2379
    - --encryption-provider-config=/etc/kubernetes/enc/encryption.yaml
    - --audit-policy-file=/etc/kubernetes/audit-policy.yaml
    - --audit-log-path=/var/log/kubernetes/audit.log
""", ["etcd-transport-insecure", "encryption-key-colocated"]),
    "control-plane/etcd.yaml": ("""\
apiVersion: v1
kind: Pod
metadata: {name: etcd, namespace: kube-system}
spec:
  hostNetwork: true
  automountServiceAccountToken: false
  containers:
  - name: etcd
    image: registry.k8s.io/etcd:3.5.16-0
    command:
    - etcd
    - --data-dir=/var/lib/etcd
    - --listen-client-urls=http://127.0.0.1:2379
    - --advertise-client-urls=http://127.0.0.1:2379
""", ["etcd-transport-insecure"]),
    "control-plane/encryption.yaml": ("""\
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - aescbc:
      keys:
      - {name: key1, secret: c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/Cg==}
  - identity: {}
- resources: [configmaps]
  providers:
  - identity: {}
  - aesgcm:
      keys:
      - {name: key1, secret: dGhpcyBpcyBub3QgYSByZWFsIGtleSwganVzdCBmYWtl}
""", ["encryption-weak-provider", "encryption-identity-first"]),
    "control-plane/audit-policy.yaml": ("""\
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: RequestResponse
  resources:
  - group: ""
    resources: ["secrets", "configmaps"]
- level: Metadata
""", ["audit-logs-secret-values"]),
    "control-plane-2/kube-apiserver.yaml": ("""\
apiVersion: v1
kind: Pod
metadata: {name: kube-apiserver, namespace: kube-system}
spec:
  hostNetwork: true
  automountServiceAccountToken: false
  containers:
  - name: kube-apiserver
    image: registry.k8s.io/kube-apiserver:v1.32.0
    command:
    - kube-apiserver
    - --advertise-address=10.0.0.11
    - --etcd-servers=https://10.0.0.20:2379
    - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt
    - --etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt
    - --etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key
""", ["encryption-missing"]),
    "control-plane-2/encryption.yaml": ("""\
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [configmaps]
  providers:
  - secretbox:
      keys:
      - {name: key1, secret: YW5vdGhlciBmYWtlIGtleSBmb3IgdGhlIGJlbmNobWFyaw==}
""", ["encryption-resource-uncovered"]),
}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: scan-gen.py OUT_DIR OBJECTS")
    out, n = sys.argv[1], int(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    documents = []
    i = 0
    while len(documents) < n:
        _, _, template = SHAPES[i % len(SHAPES)]
        text = template.format(i=i, ns=f"team-{i % 50}", c=chr(65 + i % 26))
        documents.extend(text.split("---\n"))
        i += 1
    with open(os.path.join(out, "dump.yaml"), "w") as f:
        for doc in documents[:n]:
            f.write("---\n" + doc)
    for name, (text, _) in CONTROL_PLANE.items():
        os.makedirs(os.path.dirname(os.path.join(out, name)), exist_ok=True)
        with open(os.path.join(out, name), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

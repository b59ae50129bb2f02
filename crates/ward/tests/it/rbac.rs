//! RBAC end to end: bootstrap roles, custom roles, `auth can-i`, escalation prevention,
//! impersonation, and ServiceAccounts bound to roles.

use crate::harness::Server;

fn server_with_users() -> (Server, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tmp");
    let tokens = tmp.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "alice-token-000000001,alice,u-a\nbob-token-000000000001,bob,u-b,\"qa\"\n",
    )
    .expect("tokens");
    let s = Server::start_in(
        &tmp.path().join("ward"),
        &["--token-auth-file", tokens.to_str().expect("utf8")],
    );
    (s, tmp)
}

const ALICE: &str = "alice-token-000000001";
const BOB: &str = "bob-token-000000000001";

#[test]
fn roles_bindings_can_i_and_escalation() {
    let (s, _tmp) = server_with_users();
    let as_alice = |args: &[&str]| {
        let mut v = vec!["--token", ALICE];
        v.extend_from_slice(args);
        s.kubectl_with(&v, None, &[])
    };
    let ok = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).trim().to_owned();

    s.kubectl(&["create", "secret", "generic", "s1", "--from-literal=k=v"]);
    // nothing granted yet
    let out = as_alice(&["get", "secrets"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(r#"User "alice" cannot list resource "secrets" in API group "" in the namespace "default""#), "{err}");
    let out = as_alice(&["auth", "can-i", "get", "secrets"]);
    assert_eq!((out.status.code(), ok(&out).as_str()), (Some(1), "no"));

    // a Role and a RoleBinding, then can-i answers yes for exactly what they grant
    s.kubectl(&[
        "create",
        "role",
        "secret-reader",
        "--verb=get,list,watch",
        "--resource=secrets",
    ]);
    s.kubectl(&[
        "create",
        "rolebinding",
        "alice-reads",
        "--role=secret-reader",
        "--user=alice",
    ]);
    let out = as_alice(&["auth", "can-i", "get", "secrets"]);
    assert_eq!(ok(&out), "yes");
    let out = as_alice(&["auth", "can-i", "delete", "secrets"]);
    assert_eq!((out.status.code(), ok(&out).as_str()), (Some(1), "no"));
    let out = as_alice(&["auth", "can-i", "get", "secrets", "-n", "kube-system"]);
    assert_eq!(ok(&out), "no");
    assert!(as_alice(&["get", "secrets", "-o", "name"]).status.success());
    let list = ok(&as_alice(&["auth", "can-i", "--list"]));
    assert!(
        list.contains("secrets") && list.contains("[get list watch]"),
        "{list}"
    );
    let out = as_alice(&["create", "secret", "generic", "x", "--from-literal=a=b"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("forbidden"));

    // escalation: alice may create Roles, but only with permissions she holds
    s.kubectl(&[
        "create",
        "role",
        "role-maker",
        "--verb=create",
        "--resource=roles.rbac.authorization.k8s.io",
    ]);
    s.kubectl(&[
        "create",
        "rolebinding",
        "alice-makes-roles",
        "--role=role-maker",
        "--user=alice",
    ]);
    let out = as_alice(&["create", "role", "mine", "--verb=get", "--resource=secrets"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_alice(&[
        "create",
        "role",
        "too-much",
        "--verb=delete",
        "--resource=secrets",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("attempting to grant RBAC permissions not currently held"),
        "{err}"
    );

    // bootstrap roles: view excludes secrets, edit includes them
    s.kubectl(&[
        "create",
        "rolebinding",
        "bob-views",
        "--clusterrole=view",
        "--user=bob",
    ]);
    let out = s.kubectl_with(&["--token", BOB, "get", "configmaps"], None, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.kubectl_with(&["--token", BOB, "get", "secrets"], None, &[]);
    assert!(!out.status.success());
    s.kubectl(&[
        "create",
        "rolebinding",
        "qa-edits",
        "--clusterrole=edit",
        "--group=qa",
    ]);
    let out = s.kubectl_with(&["--token", BOB, "get", "secret", "s1"], None, &[]);
    assert!(
        out.status.success(),
        "edit via group qa: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // impersonation: the admin may, alice may not
    let out = s.kubectl(&["auth", "can-i", "get", "secrets", "--as=alice"]);
    assert_eq!(out.trim(), "yes");
    let out = s.kubectl_with(
        &["auth", "can-i", "list", "configmaps", "--as=alice"],
        None,
        &[],
    );
    assert_eq!(ok(&out), "no");
    let out = as_alice(&["get", "secrets", "--as=bob"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot impersonate resource \"users\""),
        "{err}"
    );
}

/// Impersonating a user with groups, a uid and extra fields: each needs its own `impersonate`
/// grant (users, groups, uids, userextras/KEY with resourceNames), and `auth whoami` shows what
/// the request runs as.
#[test]
fn impersonation_of_groups_uids_and_extras_is_checked_one_by_one() {
    let (s, _tmp) = server_with_users();
    let role = r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole",
        "metadata":{"name":"impersonator"},
        "rules":[
          {"apiGroups":[""],"resources":["users"],"verbs":["impersonate"],"resourceNames":["bob"]},
          {"apiGroups":[""],"resources":["groups"],"verbs":["impersonate"],"resourceNames":["qa"]},
          {"apiGroups":["authentication.k8s.io"],"resources":["uids"],"verbs":["impersonate"],"resourceNames":["u-b"]},
          {"apiGroups":["authentication.k8s.io"],"resources":["userextras/scopes"],"verbs":["impersonate"],"resourceNames":["view"]}
        ]}"#;
    s.kubectl_stdin(&["apply", "-f", "-"], role);
    s.kubectl(&[
        "create",
        "clusterrolebinding",
        "alice-impersonates",
        "--clusterrole=impersonator",
        "--user=alice",
    ]);
    // kubectl 1.32 has no --as-user-extra: the headers, as client-go sends them.
    let whoami = |headers: &[&str]| {
        let mut h = vec!["Content-Type: application/json"];
        h.extend_from_slice(headers);
        s.curl_as(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &h,
            Some(br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#),
            Some(ALICE),
        )
    };
    let (code, body) = whoami(&[
        "Impersonate-User: bob",
        "Impersonate-Group: qa",
        "Impersonate-Uid: u-b",
        "Impersonate-Extra-Scopes: view",
    ]);
    assert_eq!(code, 201, "{body}");
    let who: serde_json::Value = serde_json::from_str(&body).expect("json");
    let info = &who["status"]["userInfo"];
    assert_eq!(info["username"], "bob", "{who}");
    assert_eq!(info["uid"], "u-b");
    assert_eq!(info["extra"]["scopes"], serde_json::json!(["view"]));
    let groups: Vec<&str> = info["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g.as_str())
        .collect();
    assert!(
        groups.contains(&"qa") && groups.contains(&"system:authenticated"),
        "{groups:?}"
    );

    // Each attribute not granted is refused on its own.
    for (headers, resource) in [
        (
            ["Impersonate-User: bob", "Impersonate-Extra-Scopes: admin"],
            "userextras",
        ),
        (
            ["Impersonate-User: bob", "Impersonate-Extra-Other: view"],
            "userextras",
        ),
        (
            ["Impersonate-User: bob", "Impersonate-Group: admins"],
            "groups",
        ),
        (["Impersonate-User: bob", "Impersonate-Uid: u-x"], "uids"),
        (["Impersonate-User: carol", "X-Nothing: 1"], "users"),
    ] {
        let (code, body) = whoami(&headers);
        assert_eq!(code, 403, "{headers:?} was allowed: {body}");
        assert!(
            body.contains(&format!("cannot impersonate resource \\\"{resource}")),
            "{headers:?}: {body}"
        );
    }
    // Extras without a user are a bad request.
    let (code, _) = whoami(&["Impersonate-Extra-Scopes: view"]);
    assert_eq!(code, 400);
}

#[test]
fn service_accounts_get_what_their_bindings_grant() {
    let s = Server::start();
    s.kubectl(&["create", "namespace", "apps"]);
    s.kubectl(&["create", "serviceaccount", "app", "-n", "apps"]);
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "db",
        "-n",
        "apps",
        "--from-literal=password=sa-canary",
    ]);
    s.kubectl(&[
        "create",
        "role",
        "db-reader",
        "-n",
        "apps",
        "--verb=get",
        "--resource=secrets",
        "--resource-name=db",
    ]);
    s.kubectl(&[
        "create",
        "rolebinding",
        "app-db",
        "-n",
        "apps",
        "--role=db-reader",
        "--serviceaccount=apps:app",
    ]);
    let token = s.kubectl(&["create", "token", "app", "-n", "apps"]);
    let token = token.trim();
    let v = s.kubectl(&[
        "--token",
        token,
        "get",
        "secret",
        "db",
        "-n",
        "apps",
        "-o",
        "jsonpath={.data.password}",
    ]);
    assert!(!v.is_empty());
    let out = s.kubectl_with(
        &["--token", token, "get", "secrets", "-n", "apps"],
        None,
        &[],
    );
    assert!(!out.status.success(), "resourceNames does not allow list");
    let out = s.kubectl_with(&["--token", token, "get", "secret", "db"], None, &[]);
    assert!(!out.status.success(), "not in another namespace");
}

#[test]
fn list_and_watch_do_not_leak_values() {
    let (s, _tmp) = server_with_users();
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "open",
        "--from-literal=k=visible-value",
    ]);
    s.kubectl(&[
        "create",
        "secret",
        "generic",
        "closed",
        "--from-literal=k=leak-canary-9931",
    ]);
    // alice may list and watch every secret, but get only "open"
    s.kubectl(&[
        "create",
        "role",
        "lister",
        "--verb=list,watch",
        "--resource=secrets",
    ]);
    s.kubectl(&[
        "create",
        "role",
        "open-getter",
        "--verb=get",
        "--resource=secrets",
        "--resource-name=open",
    ]);
    s.kubectl(&[
        "create",
        "rolebinding",
        "a1",
        "--role=lister",
        "--user=alice",
    ]);
    s.kubectl(&[
        "create",
        "rolebinding",
        "a2",
        "--role=open-getter",
        "--user=alice",
    ]);

    let table = s.kubectl(&["--token", ALICE, "get", "secrets"]);
    assert!(
        table.contains("closed") && table.contains("open"),
        "names-only listing works: {table}"
    );
    let list = s.kubectl(&["--token", ALICE, "get", "secrets", "-o", "json"]);
    assert!(
        !list.contains("bGVhay1jYW5hcnktOTkzMQ=="),
        "value leaked through list: {list}"
    );
    let v: serde_json::Value = serde_json::from_str(&list).expect("json");
    let items = v["items"].as_array().expect("items");
    let closed = items
        .iter()
        .find(|i| i["metadata"]["name"] == "closed")
        .expect("closed");
    assert_eq!(closed["data"]["k"], "", "key name kept, value withheld");
    assert_eq!(
        closed["metadata"]["annotations"]["ward.dev/values-omitted"],
        "true"
    );
    let open = items
        .iter()
        .find(|i| i["metadata"]["name"] == "open")
        .expect("open");
    assert_eq!(
        open["data"]["k"], "dmlzaWJsZS12YWx1ZQ==",
        "values shown where get is allowed"
    );
    let out = s.kubectl_with(&["--token", ALICE, "get", "secret", "closed"], None, &[]);
    assert!(!out.status.success());

    // watch: the same rule per event
    let (c, body) = s.curl_as(
        "GET",
        "/api/v1/namespaces/default/secrets?watch=1&timeoutSeconds=1",
        &[],
        None,
        Some(ALICE),
    );
    assert_eq!(c, 200, "{body}");
    assert!(
        body.contains("closed") && !body.contains("bGVhay1jYW5hcnktOTkzMQ=="),
        "{body}"
    );
    // the admin still sees everything
    let all = s.kubectl(&["get", "secrets", "-o", "json"]);
    assert!(all.contains("bGVhay1jYW5hcnktOTkzMQ=="));
}

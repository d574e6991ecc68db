"""fakecloud — stand-ins for the `aws`, `gcloud` and `az` CLIs for
tests/integration/test_providers.py. No cloud is reachable from the test
machines, so the providers are tested against these: each answers the few
commands the providers use with the JSON shapes the real CLIs document
(AWS CLI v2 `ec2 run-instances` / `describe-instances` /
`terminate-instances --output json`; `gcloud compute instances
create/list/delete --format=json`; `az vm create` / `az vm list -d` /
`az vm delete --output json`) and fails the way they do (message on
stderr, non-zero exit).

State and records live in $FAKE_CLOUD_DIR: state.json (the instances),
calls.jsonl (one line per call: cli, argv, stdin and the text of every
file the call names — user-data — read while the call runs, since the
provider removes it after) and, to inject a failure, fail.json:
{"aws run-instances": {"rc": 254, "stderr": "..."}} (key: the CLI and
words its arguments must all contain). Instances boot one step per list call (pending →
running; PROVISIONING → STAGING → RUNNING) and die one step per list call
after a delete, as the real clouds' do over time.
Usage: fakecloud.py aws|gcloud|az ARGS... (the wrappers beside it).
"""
import json
import os
import random
import sys

DIR = os.environ["FAKE_CLOUD_DIR"]


def load():
    try:
        with open(os.path.join(DIR, "state.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"aws": [], "gcloud": [], "az": [], "tokens": {}}


def save(st):
    tmp = os.path.join(DIR, "state.json.tmp")
    with open(tmp, "w") as f:
        json.dump(st, f, indent=1)
    os.rename(tmp, os.path.join(DIR, "state.json"))


def fail(rc, msg):
    sys.stderr.write(msg + "\n")
    sys.exit(rc)


def opt(argv, name, default=None):
    """The value of --name V or --name=V."""
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a[len(name) + 1:]
    return default


def opt_list(argv, name):
    """The values after --name up to the next --flag."""
    if name not in argv:
        return []
    out = []
    for a in argv[argv.index(name) + 1:]:
        if a.startswith("--"):
            break
        out.append(a)
    return out


def read_files(argv):
    files = {}
    for a in argv:
        for prefix in ("file://", "user-data="):
            if prefix in a:
                path = a.split(prefix, 1)[1]
                if os.path.isfile(path):
                    files[path] = open(path).read()
    ud = opt(argv, "--custom-data")
    if ud and os.path.isfile(ud):
        files[ud] = open(ud).read()
    return files


def out(obj):
    sys.stdout.write(json.dumps(obj, indent=4) + "\n")


# ---------------------------------------------------------------- aws

AWS_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48}


def aws_tick(st):
    for i in st["aws"]:
        i["State"] = {"pending": "running", "shutting-down": "terminated"}.get(i["State"], i["State"])


def aws_view(i):
    v = {"AmiLaunchIndex": 0, "ImageId": "ami-0abcdef1234567890", "InstanceId": i["InstanceId"],
         "InstanceType": i.get("InstanceType", "g5.2xlarge"), "LaunchTime": "2026-12-07T16:00:00+00:00",
         "Placement": {"AvailabilityZone": "us-east-1a", "GroupName": "", "Tenancy": "default"},
         "PrivateIpAddress": "10.0.1.%d" % (int(i["InstanceId"][-2:], 16) % 250 + 2),
         "State": {"Code": AWS_CODES[i["State"]], "Name": i["State"]}, "Tags": i["Tags"]}
    if i.get("spot"):
        v["InstanceLifecycle"] = "spot"
        v["SpotInstanceRequestId"] = "sir-" + i["InstanceId"][2:10]
    return v


def aws(argv, st):
    cmd = argv[argv.index("ec2") + 1] if "ec2" in argv else None
    if cmd == "run-instances":
        token = opt(argv, "--client-token")
        if token and token in st["tokens"]:
            inst = [i for i in st["aws"] if i["InstanceId"] == st["tokens"][token]][0]
            if inst["State"] == "terminated":
                fail(254, "An error occurred (IdempotentInstanceTerminated) when calling the "
                     "RunInstances operation: The client token has been used for an instance "
                     "that was terminated")
        else:
            if not opt(argv, "--launch-template") and not opt(argv, "--image-id"):
                fail(252, "aws: error: the following arguments are required: --image-id")
            tags = []
            for spec in json.loads(opt(argv, "--tag-specifications", "[]")):
                if spec.get("ResourceType") == "instance":
                    tags = spec.get("Tags", [])
            market = json.loads(opt(argv, "--instance-market-options", "{}"))
            inst = {"InstanceId": "i-%017x" % random.getrandbits(68), "State": "pending",
                    "Tags": tags, "spot": market.get("MarketType") == "spot"}
            st["aws"].append(inst)
            if token:
                st["tokens"][token] = inst["InstanceId"]
        out({"Groups": [], "Instances": [aws_view(inst)], "OwnerId": "123456789012",
             "ReservationId": "r-%017x" % random.getrandbits(68)})
    elif cmd == "describe-instances":
        aws_tick(st)
        filters = opt_list(argv, "--filters")
        want = {}
        for f in filters:  # Name=tag:K,Values=V1,V2
            name, values = f.split(",Values=", 1)
            want[name[len("Name="):]] = values.split(",")
        res = []
        for i in st["aws"]:
            tags = {t["Key"]: t["Value"] for t in i["Tags"]}
            ok = all((k.startswith("tag:") and tags.get(k[4:]) in v) or
                     (k == "instance-state-name" and i["State"] in v) for k, v in want.items())
            if ok:
                res.append({"Groups": [], "Instances": [aws_view(i)], "OwnerId": "123456789012",
                            "ReservationId": "r-0" + i["InstanceId"][2:]})
        out({"Reservations": res})
    elif cmd == "terminate-instances":
        ids = opt_list(argv, "--instance-ids")
        byid = {i["InstanceId"]: i for i in st["aws"]}
        for x in ids:
            if x not in byid:
                fail(254, "An error occurred (InvalidInstanceID.NotFound) when calling the "
                     "TerminateInstances operation: The instance ID '%s' does not exist" % x)
        res = []
        for x in ids:
            prev = byid[x]["State"]
            if prev not in ("terminated",):
                byid[x]["State"] = "shutting-down"
            res.append({"CurrentState": {"Code": AWS_CODES[byid[x]["State"]],
                                         "Name": byid[x]["State"]},
                        "InstanceId": x, "PreviousState": {"Code": AWS_CODES[prev], "Name": prev}})
        out({"TerminatingInstances": res})
    else:
        fail(252, "aws: error: argument operation: Invalid choice: %s" % cmd)


# ---------------------------------------------------------------- gcloud

GCE = "https://www.googleapis.com/compute/v1/projects/fake-project"


def gce_view(i):
    v = {"kind": "compute#instance", "id": i["id"], "name": i["name"], "status": i["status"],
         "zone": "%s/zones/%s" % (GCE, i["zone"]),
         "selfLink": "%s/zones/%s/instances/%s" % (GCE, i["zone"], i["name"]),
         "machineType": "%s/zones/%s/machineTypes/%s" % (GCE, i["zone"], i["machineType"]),
         "creationTimestamp": "2026-12-07T08:00:00.000-08:00", "labels": i["labels"],
         "scheduling": {"automaticRestart": not i["spot"], "onHostMaintenance":
                        "TERMINATE" if i["spot"] else "MIGRATE", "preemptible": i["spot"]}}
    if i["spot"]:
        v["scheduling"].update(provisioningModel="SPOT", instanceTerminationAction="DELETE")
    return v


def positionals(argv, after):
    """The arguments after the word `after` up to the first flag."""
    rest = argv[argv.index(after) + 1:]
    out = []
    for a in rest:
        if a.startswith("-"):
            break
        out.append(a)
    return out


def gcloud(argv, st):
    words = positionals(argv, "compute") if "compute" in argv else []
    if words[:1] != ["instances"] or len(words) < 2:
        fail(2, "ERROR: (gcloud) Invalid choice: '%s'." % " ".join(words[:2]))
    cmd = words[1]
    words = ["compute"] + words
    if cmd == "create":
        zone = opt(argv, "--zone")
        if not zone:
            fail(1, "ERROR: (gcloud.compute.instances.create) Underspecified resource [%s]. "
                 "Specify the [--zone] flag." % words[3])
        res = []
        for name in words[3:]:
            if any(i["name"] == name for i in st["gcloud"]):
                fail(1, "ERROR: (gcloud.compute.instances.create) Could not fetch resource:\n"
                     " - The resource 'projects/fake-project/zones/%s/instances/%s' already "
                     "exists" % (zone, name))
            labels = dict(kv.split("=", 1) for kv in opt(argv, "--labels", "").split(",") if kv)
            i = {"name": name, "id": str(random.getrandbits(62)), "status": "PROVISIONING",
                 "zone": zone, "machineType": opt(argv, "--machine-type", "n1-standard-1"),
                 "labels": labels, "spot": opt(argv, "--provisioning-model") == "SPOT"}
            st["gcloud"].append(i)
            res.append(gce_view(i))
        out(res)
    elif cmd == "list":
        for i in st["gcloud"]:
            i["status"] = {"PROVISIONING": "STAGING", "STAGING": "RUNNING"}.get(i["status"],
                                                                                  i["status"])
        flt = opt(argv, "--filter", "")
        res = []
        for i in st["gcloud"]:
            if flt.startswith("labels."):
                k, v = flt[len("labels."):].split("=", 1)
                if i["labels"].get(k) != v:
                    continue
            res.append(gce_view(i))
        out(res)
    elif cmd == "delete":
        zone = opt(argv, "--zone")
        names = words[3:]
        for n in names:
            if not any(i["name"] == n and i["zone"] == zone for i in st["gcloud"]):
                fail(1, "ERROR: (gcloud.compute.instances.delete) Could not fetch resource:\n"
                     " - The resource 'projects/fake-project/zones/%s/instances/%s' was not "
                     "found" % (zone, n))
        st["gcloud"] = [i for i in st["gcloud"] if i["name"] not in names]
        for n in names:
            sys.stderr.write("Deleted [%s/zones/%s/instances/%s].\n" % (GCE, zone, n))
        out([])
    else:
        fail(2, "ERROR: (gcloud.compute.instances) Invalid choice: '%s'." % cmd)


# ---------------------------------------------------------------- az

SUB = "/subscriptions/00000000-0000-0000-0000-000000000000"


def az_view(v, details=True):
    d = {"id": "%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s"
               % (SUB, v["rg"], v["name"]),
         "name": v["name"], "resourceGroup": v["rg"], "location": "eastus", "tags": v["tags"],
         "type": "Microsoft.Compute/virtualMachines", "priority": v["priority"],
         "evictionPolicy": v.get("evictionPolicy"),
         "billingProfile": {"maxPrice": v["maxPrice"]} if v["priority"] == "Spot" else None,
         "hardwareProfile": {"vmSize": v["size"]}, "provisioningState": v["provisioningState"]}
    if details:
        d.update(powerState=v["powerState"], privateIps="10.0.0.4", publicIps="", fqdns="")
    return d


def az(argv, st):
    words = [a for a in argv if not a.startswith("-")]
    if words[:1] != ["vm"]:
        fail(2, "ERROR: '%s' is misspelled or not recognized by the system." % words[0])
    cmd = words[1]
    rg = opt(argv, "--resource-group") or opt(argv, "-g")
    if cmd == "create":
        name = opt(argv, "--name")
        if not rg or not name or not opt(argv, "--image"):
            fail(2, "ERROR: the following arguments are required: --resource-group/-g, "
                 "--name/-n, --image")
        tags = dict(t.split("=", 1) for t in opt_list(argv, "--tags"))
        v = next((v for v in st["az"] if v["name"] == name and v["rg"] == rg), None)
        if v is None:
            v = {"name": name, "rg": rg, "tags": tags, "priority": opt(argv, "--priority",
                                                                        "Regular"),
                 "evictionPolicy": opt(argv, "--eviction-policy"),
                 "maxPrice": float(opt(argv, "--max-price", "-1")),
                 "size": opt(argv, "--size", "Standard_DS1_v2"),
                 "provisioningState": "Creating", "powerState": "VM starting"}
            st["az"].append(v)
        out({"fqdns": "", "id": az_view(v)["id"], "location": "eastus",
             "macAddress": "00-0D-3A-12-34-56", "powerState": "VM running",
             "privateIpAddress": "10.0.0.4", "publicIpAddress": "", "resourceGroup": rg,
             "zones": ""})
    elif cmd == "list":
        st["az"] = [v for v in st["az"] if not v.get("gone")]
        for v in st["az"]:
            if v["provisioningState"] == "Creating":
                v["provisioningState"], v["powerState"] = "Succeeded", "VM running"
            elif v["provisioningState"] == "Deleting":
                v["gone"] = True  # listed once more as Deleting, then no more
        details = "--show-details" in argv or "-d" in argv
        out([az_view(v, details) for v in st["az"] if not rg or v["rg"] == rg])
    elif cmd == "delete":
        ids = opt_list(argv, "--ids")
        byid = {az_view(v)["id"]: v for v in st["az"]}
        for x in ids:
            if x not in byid:
                fail(3, "ERROR: (ResourceNotFound) The Resource '%s' was not found."
                     % x.rsplit("/", 1)[-1])
            byid[x]["provisioningState"] = "Deleting"
            byid[x]["powerState"] = "VM stopping"
    else:
        fail(2, "ERROR: 'vm %s' is misspelled or not recognized by the system." % cmd)


def main():
    cli, argv = sys.argv[1], sys.argv[2:]
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    with open(os.path.join(DIR, "calls.jsonl"), "a") as f:
        f.write(json.dumps({"cli": cli, "argv": argv, "stdin": stdin,
                            "files": read_files(argv)}) + "\n")
    try:
        with open(os.path.join(DIR, "fail.json")) as f:
            failures = json.load(f)
    except FileNotFoundError:
        failures = {}
    for key, f in failures.items():
        words = key.split()
        if words[0] == cli and all(w in argv for w in words[1:]):
            fail(f["rc"], f["stderr"])
    st = load()
    {"aws": aws, "gcloud": gcloud, "az": az}[cli](argv, st)
    save(st)


if __name__ == "__main__":
    main()

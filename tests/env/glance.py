#!/usr/bin/env python3
"""tests/env/glance.py - fixtures in the real Glance of tests/env/up.sh, as the owner project
(standard library only; reads the OSL_* variables of .e2e/env.sh).

  glance.py images N [PREFIX]          create N shared images, print their IDs
  glance.py share COUNT M1 M2 IMAGE... add COUNT members (M1, M2 on each image in turn) one
                                       after the other, as a plain API client; print seconds
  glance.py count                      the owner project's images and their members: "IMAGES MEMBERS"
  glance.py delete IMAGE...            delete images (their members go with them)
"""
import json
import os
import sys
import time
import urllib.request

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def owner_token():
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "owner-user", "domain": {"id": "default"}, "password": os.environ["OSL_USER_PASSWORD"]}}},
        "scope": {"project": {"name": "owner", "domain": {"id": "default"}}}}}
    request = urllib.request.Request(os.environ["OSL_KEYSTONE_URL"] + "/auth/tokens", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    return OPENER.open(request).headers["X-Subject-Token"]


def post(path, body, token):
    request = urllib.request.Request(os.environ["OSL_GLANCE_URL"] + path, json.dumps(body).encode(),
                                     {"Content-Type": "application/json", "Accept": "application/json",
                                      "X-Auth-Token": token})
    return json.loads(OPENER.open(request).read())


def images(count, prefix="bench"):
    token = owner_token()
    for i in range(count):
        print(post("/v2/images", {"name": f"{prefix}-{i}", "visibility": "shared", "disk_format": "raw",
                                  "container_format": "bare"}, token)["id"])


def share(count, members, image_ids):
    started = time.monotonic()
    token = owner_token()
    pairs = [(image, member) for image in image_ids for member in members][:count]
    for image, member in pairs:
        post(f"/v2/images/{image}/members", {"member": member}, token)
    print(f"{time.monotonic() - started:.2f}")


def get(path, token):
    request = urllib.request.Request(os.environ["OSL_GLANCE_URL"] + path,
                                     headers={"Accept": "application/json", "X-Auth-Token": token})
    return json.loads(OPENER.open(request).read())


def count():
    token = owner_token()
    owner = os.environ["OSL_OWNER_PROJECT_ID"]
    images, path = [], f"/v2/images?owner={owner}&limit=1000"
    while path:
        page = get(path, token)
        images += [i["id"] for i in page["images"]]
        path = page.get("next")
    members = sum(len(get(f"/v2/images/{i}/members", token)["members"]) for i in images)
    print(len(images), members)


def delete(image_ids):
    token = owner_token()
    for image in image_ids:
        request = urllib.request.Request(os.environ["OSL_GLANCE_URL"] + f"/v2/images/{image}",
                                         method="DELETE", headers={"X-Auth-Token": token})
        OPENER.open(request).read()


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "images":
        images(int(args[0]), *args[1:2])
    elif command == "share":
        share(int(args[0]), args[1:3], args[3:])
    elif command == "count":
        count()
    elif command == "delete":
        delete(args)
    else:
        sys.exit(__doc__)

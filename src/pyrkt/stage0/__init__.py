"""Use cases that join pods, images, networks and stage1: prepare, run, manage, images.

- ``prepare``, ``run``: make a pod from images and start it through its stage1 flavor
- ``layers``: look a path up in an image's layers without mounting them
- ``control``: act on running pods (enter, stop) and read app logs
- ``manage``: list, status, rm and gc of existing pods
"""

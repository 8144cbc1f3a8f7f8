"""What people look at: a server-rendered web dashboard (memory composition, releases, try a
release on an image) over the workspace, served by `knnclip dashboard` (see dashboards/app.py)."""

"""The labelling loop: doubtful segments captured from production, exported as annotation
tasks (Label Studio, CVAT, COCO), and the corrected labels read back through ingest.

- capture.py: a bounded store of captured answers (image + proposals + scores + neighbours);
- curation_queue.py: label conflicts and near-duplicates of a curation queued the same way;
- tasks.py: captures as tasks, and the COCO instances form shared by the formats;
- label_studio.py, cvat.py, brush.py: the tools' own formats, both ways;
- importer.py: annotation files -> a reader -> the normal ingest (validation, quarantine).
"""

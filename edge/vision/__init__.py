"""On-device face checks for remote banking sessions: detection, liveness, face-aware video.

Pure pre/post-processing modules (`blazeface`, `facemesh`, `classifier`, `challenge`, `verdict`,
`roi`) take arrays and time as arguments; `runtime` is the only module that touches
onnxruntime, and `session` the only one that awaits.
"""

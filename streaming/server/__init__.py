"""The classification server's core: gRPC servicers, stream batching and the model behind them.

A stream's frames arrive in :mod:`~streaming.server.stream_service`, are decoded on arrival
(:mod:`~streaming.server.frame_intake`), wait in the :mod:`~streaming.server.batcher` until the
:mod:`~streaming.server.scheduler` takes them into a batch, go through the model
(:mod:`~streaming.server.model`, run by :mod:`~streaming.server.batch_pipeline`) and come back as
answers smoothed over each stream's :mod:`~streaming.server.window`;
:mod:`~streaming.server.grpc_server` assembles it all and :mod:`~streaming.server.serve_cli` is the
``serve`` command. Importing this package is cheap: nothing below it is imported until asked for,
and TensorFlow only by :mod:`~streaming.server.model`.
"""

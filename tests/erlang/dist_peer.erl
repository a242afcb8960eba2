%% The Erlang side of the `dist_*` tests: a gen_server registered as `echo`
%% that answers any call X with {echo, X}, `whoami` with its pid, `stall`
%% never, and `stop` by stopping; plus helpers the tests' -eval lines use.
-module(dist_peer).
-behaviour(gen_server).
-export([start/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).
-export([print/1, watch/1, watch_call/1, forward/0, pg_peer/1]).
-export([bench_server/0, sinks/1]).

start() ->
    {ok, _} = gen_server:start({local, echo}, ?MODULE, [], []),
    ok.

init([]) -> {ok, nostate}.

handle_call(stall, _From, S) -> {noreply, S};
handle_call(whoami, _From, S) -> {reply, self(), S};
handle_call(monitored_by, _From, S) ->
    {monitored_by, By} = erlang:process_info(self(), monitored_by),
    {reply, length(By), S};
handle_call(victim, _From, S) -> {reply, spawn(fun victim/0), S};
handle_call({monitored_by, P}, _From, S) ->
    {monitored_by, By} = erlang:process_info(P, monitored_by),
    {reply, length(By), S};
handle_call({links, P}, _From, S) ->
    {links, Links} = erlang:process_info(P, links),
    {reply, length(Links), S};
handle_call(stop, _From, S) -> {stop, normal, stopped, S};
handle_call(X, _From, S) -> {reply, {echo, X}, S}.

handle_cast({disconnect, Node}, S) -> erlang:disconnect_node(Node), {noreply, S};
handle_cast(_, S) -> {noreply, S}.

%% A process the tests watch from Trellis: ends with R on {exit, R}, is
%% killed (exit(self(), kill): `killed` to its links) on `kill`.
victim() ->
    receive
        {exit, R} -> exit(R);
        kill -> exit(self(), kill)
    end.
handle_info(_, S) -> {noreply, S}.

%% One line on stdout, as the tests read it.
print(Term) -> io:format("~0p~n", [Term]).

%% Monitors Dest, tells it `monitoring` (after the monitor, on the same
%% connection), and prints the DOWN's reason when it comes.
watch(Dest) ->
    Ref = erlang:monitor(process, Dest),
    Dest ! monitoring,
    receive {'DOWN', Ref, process, _, Reason} -> print({down, Reason}) end.

%% Monitors Dest, calls it with `hello` (so the monitor is in when the reply
%% comes), prints {reply, R}, then the DOWN's reason.
watch_call(Dest) ->
    Ref = erlang:monitor(process, Dest),
    print({reply, gen_server:call(Dest, hello)}),
    receive {'DOWN', Ref, process, _, Reason} -> print({down, Reason}) end.

%% Registered as `fwd`, trapping exits: prints each message it receives;
%% `{link, P}` links to P and tells P `linked`.
forward() ->
    register(fwd, self()),
    process_flag(trap_exit, true),
    print(ready),
    forward_loop().

forward_loop() ->
    receive
        {link, P} -> link(P), P ! linked, forward_loop();
        {link, P, Ack} -> link(P), Ack ! linked, forward_loop();
        {monitor, P, Ack} -> erlang:monitor(process, P), Ack ! monitoring, forward_loop();
        Msg -> print(Msg), forward_loop()
    end.

%% --- pg across nodes (tests/dist_pg.rs) -------------------------------------

%% Starts the pg scope S, registers as `pg_peer`, prints `ready`, then
%% prints every change of the scope as {Action, Group, Pids}; on {join, G}
%% a new process joins G (printed {joined, G}); on {stop, P}, P ends.
pg_peer(S) ->
    {ok, _} = pg:start(S),
    {Ref, _} = pg:monitor_scope(S),
    register(pg_peer, self()),
    print(ready),
    pg_loop(S, Ref).

pg_loop(S, Ref) ->
    receive
        {Ref, Action, Group, Pids} ->
            print({Action, Group, length(Pids)}),
            pg_loop(S, Ref);
        {join, Group} ->
            P = spawn(fun() -> receive stop -> ok end end),
            ok = pg:join(S, Group, P),
            print({joined, Group}),
            pg_loop(S, Ref);
        {stop, P} ->
            P ! stop,
            pg_loop(S, Ref);
        {members, Group, From} ->
            From ! {members, [P || P <- pg:get_members(S, Group), node(P) =/= node()]},
            pg_loop(S, Ref)
    end.

%% --- Benchmarks (examples/dist_bench.rs) -----------------------------------

%% Registered as `bench`: runs one benchmark row per request and answers
%% the requester {done, Ops, Micros}.
bench_server() ->
    register(bench, self()),
    print(ready),
    bench_loop().

bench_loop() ->
    receive
        {calls, Dest, N, From} ->
            call_n(Dest, 100),
            From ! {done, N, timed(fun() -> call_n(Dest, N) end)};
        {concurrent, Dest, P, N, From} ->
            From ! {done, P * N, timed(fun() -> concurrent(Dest, P, N) end)};
        {oneway, Sinks, Payload, N, From} ->
            Each = N div length(Sinks),
            From ! {done, Each * length(Sinks), timed(fun() -> oneway(Sinks, Payload, Each) end)}
    end,
    bench_loop().

timed(Fun) ->
    T0 = erlang:monotonic_time(microsecond),
    Fun(),
    erlang:monotonic_time(microsecond) - T0.

call_n(_, 0) -> ok;
call_n(Dest, N) -> {echo, x} = gen_server:call(Dest, x), call_n(Dest, N - 1).

%% P processes calling Dest N times each.
concurrent(Dest, P, N) ->
    Self = self(),
    [spawn(fun() -> call_n(Dest, N), Self ! called end) || _ <- lists:seq(1, P)],
    [receive called -> ok end || _ <- lists:seq(1, P)].

%% Sends Each messages {m, Payload} to every sink (round robin) and waits
%% until each has them all.
oneway(Sinks, Payload, Each) ->
    [S ! {expect, Each, self()} || S <- Sinks],
    send_rr(Sinks, Sinks, {m, Payload}, Each * length(Sinks)),
    [receive {drained, Each} -> ok end || _ <- Sinks].

send_rr(_, _, _, 0) -> ok;
send_rr([], All, Msg, N) -> send_rr(All, All, Msg, N);
send_rr([S | Rest], All, Msg, N) -> S ! Msg, send_rr(Rest, All, Msg, N - 1).

%% K sink processes registered as sink1 .. sinkK: each, on {expect, N,
%% From}, takes N {m, _} messages, then tells From {drained, N}.
sinks(K) ->
    [register(list_to_atom("sink" ++ integer_to_list(I)), spawn(fun sink_loop/0))
     || I <- lists:seq(1, K)],
    print(ready).

sink_loop() ->
    receive
        {expect, N, From} -> drain(N), From ! {drained, N}, sink_loop()
    end.

drain(0) -> ok;
drain(N) -> receive {m, _} -> drain(N - 1) end.

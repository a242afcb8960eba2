%% The Erlang side of the `dist_*` tests: a gen_server registered as `echo`
%% that answers any call X with {echo, X}, `whoami` with its pid, `stall`
%% never, and `stop` by stopping; plus helpers the tests' -eval lines use.
-module(dist_peer).
-behaviour(gen_server).
-export([start/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).
-export([print/1, watch/1, forward/0]).

start() ->
    {ok, _} = gen_server:start({local, echo}, ?MODULE, [], []),
    ok.

init([]) -> {ok, nostate}.

handle_call(stall, _From, S) -> {noreply, S};
handle_call(whoami, _From, S) -> {reply, self(), S};
handle_call(stop, _From, S) -> {stop, normal, stopped, S};
handle_call(X, _From, S) -> {reply, {echo, X}, S}.

handle_cast(_, S) -> {noreply, S}.
handle_info(_, S) -> {noreply, S}.

%% One line on stdout, as the tests read it.
print(Term) -> io:format("~0p~n", [Term]).

%% Monitors Dest, tells it `monitoring` (after the monitor, on the same
%% connection), and prints the DOWN's reason when it comes.
watch(Dest) ->
    Ref = erlang:monitor(process, Dest),
    Dest ! monitoring,
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
        Msg -> print(Msg), forward_loop()
    end.
